// Conversions the core leaves to ggml: into quantized engine types (an f16 file tensor into a
// q8_0 ggml tensor), through ggml's own type traits and quantizers, a few rows at a time.
#pragma once

#include <ggml.h>

#include <cstddef>
#include <span>

#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"

namespace weightmap::ggml::detail {

// True when `from` can be read as f32 (by the core or ggml's to_float) and ggml quantizes f32
// into `to` without an importance matrix. False for from == to.
bool ggml_can_convert(DType from, DType to) noexcept;

// Converts the file bytes `src` (type `from`, as many elements as `dst`) into `dst`, which
// has its buffer already: written in place when the buffer is host memory, else uploaded in
// chunks with ggml_backend_tensor_set. Throws Error(unsupported) naming `where` when rows are
// not whole blocks of either type, Error(invalid_argument) when src has the wrong size.
void convert_with_ggml(DType from, std::span<const std::byte> src, ggml_tensor& dst,
                       const ErrorContext& where);

}  // namespace weightmap::ggml::detail
