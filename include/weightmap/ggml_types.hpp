// Where weightmap's vocabulary meets ggml's: DType against ggml_type, and a file's shape
// (outermost dimension first) against ggml's ne[] (innermost first). Part of the ggml adapter
// (library weightmap::ggml); ggml.hpp includes it.
#pragma once

#include <ggml.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap::ggml {

// The one place where the two shape orders meet: TensorInfo::shape is outermost first (as
// files store it), ggml's ne[] innermost first. shape_of drops ggml's trailing 1s beyond the
// tensor's ggml_n_dims.
std::vector<std::uint64_t> shape_of(const ggml_tensor& tensor);
// ne[] for a file shape. Throws Error(unsupported) for more than GGML_MAX_DIMS dimensions or
// a dimension above INT64_MAX.
std::array<std::int64_t, GGML_MAX_DIMS> ne_of(std::span<const std::uint64_t> shape);

// The ggml_type with the same id as `dtype`. Throws Error(unsupported) for a type ggml lacks.
ggml_type ggml_type_of(DType dtype);
// Throws Error(unsupported) for a ggml_type weightmap does not know.
DType dtype_of(ggml_type type);

}  // namespace weightmap::ggml
WEIGHTMAP_API_END
