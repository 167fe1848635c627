#include "lora/patch_kernel.hpp"

#include <algorithm>

#include "weightmap/convert.hpp"

namespace weightmap::lora {
namespace {

// delta[j] = sum_r up[row, r] * down[r, col + j], r in order.
void low_rank_tile(const PreparedPatch& patch, std::uint64_t row, std::uint64_t col, std::size_t n,
                   float* delta) {
  std::fill(delta, delta + n, 0.0f);
  const float* up = patch.up.data() + row * patch.rank;
  for (std::uint64_t r = 0; r < patch.rank; ++r) {
    const float u = up[r];
    const float* down = patch.down.data() + r * patch.cols + col;
    for (std::size_t j = 0; j < n; ++j) delta[j] += u * down[j];
  }
}

void diff_tile(const PreparedPatch& patch, std::uint64_t element, std::size_t n, float* delta,
               std::vector<std::byte>& raw) {
  const std::uint64_t size = *dtype_bytes_for(patch.diff->dtype, 1);
  raw.resize(n * size);
  patch.diff_reader->read_at(patch.diff->offset + element * size, raw);
  convert(patch.diff->dtype, raw, DType::F32, std::as_writable_bytes(std::span(delta, n)), n);
}

}  // namespace

bool patchable_dtype(DType dtype) noexcept {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

void add_patches(DType dtype, std::span<std::byte> bytes, std::uint64_t first, std::uint64_t count,
                 std::span<const PreparedPatch* const> patches, std::size_t tile_elements,
                 TileScratch& scratch) {
  if (count == 0 || patches.empty()) return;
  const std::uint64_t size = *dtype_bytes_for(dtype, 1);
  const std::uint64_t cols = patches.front()->cols;
  tile_elements = std::max<std::size_t>(tile_elements, 1);
  scratch.weights.resize(tile_elements);
  scratch.delta.resize(tile_elements);
  for (const PreparedPatch* patch : patches) {
    std::uint64_t element = first;
    while (element < first + count) {
      const std::uint64_t row = element / cols;
      const std::uint64_t col = element % cols;
      const auto n = static_cast<std::size_t>(
          std::min<std::uint64_t>({cols - col, first + count - element, tile_elements}));
      const auto tile = bytes.subspan(static_cast<std::size_t>((element - first) * size),
                                      static_cast<std::size_t>(n * size));
      float* weights = scratch.weights.data();
      float* delta = scratch.delta.data();
      const auto weight_bytes = std::as_writable_bytes(std::span(weights, n));
      convert(dtype, tile, DType::F32, weight_bytes, n);
      if (patch->rank == 0) {
        diff_tile(*patch, element, n, delta, scratch.raw);
      } else {
        low_rank_tile(*patch, row, col, n, delta);
      }
      const float scale = patch->scale;
      for (std::size_t j = 0; j < n; ++j) weights[j] += scale * delta[j];
      convert(DType::F32, weight_bytes, dtype, tile, n);
      element += n;
    }
  }
}

}  // namespace weightmap::lora
