// Element-type conversions for tensors whose stored type differs from the type an engine
// asks for: wider floats from narrow ones (f16, bf16, f8, f64 -> f32), narrowing with
// round-to-nearest-even (f32 -> f16, bf16; f16 <-> bf16), and range-checked i64 -> i32.
// Quantized types are not converted here: that is the ggml adapter's job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// True when convert() can turn `from` into `to`. The same known type counts as convertible
// (a copy), block types included.
bool can_convert(DType from, DType to) noexcept;

// Converts `elements` elements from src (type `from`) into dst (type `to`).
//
// src must hold at least dtype_bytes_for(from, elements) bytes and dst at least
// dtype_bytes_for(to, elements); bytes past those are neither read nor written. src and dst
// must not overlap. Throws Error(invalid_argument) otherwise.
// Throws Error(unsupported) naming both types when can_convert(from, to) is false, and
// Error(malformed) naming the element index and value for an i64 that does not fit i32 (dst
// then holds the elements before it; the rest is unspecified).
//
// Rounding is to nearest, ties to even. NaN stays NaN (quiet, sign and leading payload bits
// kept); a value too large for f16 becomes infinity. f8_e4m3 is the "fn" variant (no
// infinities, S.1111.111 is NaN, largest finite 448); f8_e5m2 has IEEE infinities and NaNs.
void convert(DType from, std::span<const std::byte> src, DType to, std::span<std::byte> dst,
             std::uint64_t elements);

// Which implementation runs on this CPU: "avx2+f16c" or "scalar". For reports and benches.
std::string_view convert_implementation() noexcept;

}  // namespace weightmap
WEIGHTMAP_API_END
