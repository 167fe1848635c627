// Adds prepared patches to a run of a tensor's elements, in f32 tiles, written back in the
// tensor's own type. The one kernel behind applying, re-applying after an undo and merging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lora/lora_factors.hpp"

namespace weightmap::lora {

// Per-worker working space; grows to the tile size and stays there.
struct TileScratch {
  std::vector<float> weights;
  std::vector<float> delta;
  std::vector<std::byte> raw;  // a diff's stored bytes
};

// True for the types patches are written back in: f32, f16, bf16.
bool patchable_dtype(DType dtype) noexcept;

// `bytes` holds elements [first, first + count) of a [rows, cols] tensor of type `dtype`
// (f32, f16 or bf16). Each patch is added in turn and rounded to `dtype` before the next,
// so patches applied together give the same bytes as patches applied one after another:
// W = round(W + scale * (up x down)), the product summed over the rank in order, in f32.
void add_patches(DType dtype, std::span<std::byte> bytes, std::uint64_t first, std::uint64_t count,
                 std::span<const PreparedPatch* const> patches, std::size_t tile_elements,
                 TileScratch& scratch);

}  // namespace weightmap::lora
