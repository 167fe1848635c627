// Files list dimensions outermost first; ggml's ne[] is innermost first. Every conversion
// between the two goes through these two functions.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdint>

#include "weightmap/error.hpp"
#include "weightmap/ggml_types.hpp"

namespace weightmap::ggml {

std::vector<std::uint64_t> shape_of(const ggml_tensor& tensor) {
  const int dims = ggml_n_dims(&tensor);
  std::vector<std::uint64_t> shape;
  shape.reserve(static_cast<std::size_t>(dims));
  for (int i = dims - 1; i >= 0; --i) shape.push_back(static_cast<std::uint64_t>(tensor.ne[i]));
  return shape;
}

std::array<std::int64_t, GGML_MAX_DIMS> ne_of(std::span<const std::uint64_t> shape) {
  if (shape.size() > GGML_MAX_DIMS) {
    throw Error(ErrorCode::unsupported,
                fmt::format("shape [{}] has {} dimensions; ggml tensors have at most {}",
                            fmt::join(shape, ", "), shape.size(), GGML_MAX_DIMS));
  }
  std::array<std::int64_t, GGML_MAX_DIMS> ne{};
  ne.fill(1);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::uint64_t dim = shape[shape.size() - 1 - i];
    if (dim > static_cast<std::uint64_t>(INT64_MAX)) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("dimension {} of shape [{}] does not fit ggml's int64_t", dim,
                              fmt::join(shape, ", ")));
    }
    ne[i] = static_cast<std::int64_t>(dim);
  }
  return ne;
}

}  // namespace weightmap::ggml
