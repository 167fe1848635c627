// Adds prepared patches to a run of a tensor's elements, in f32 tiles, written back in the
// tensor's own type. The one kernel behind applying, re-applying after an undo and merging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lora/lora_factors.hpp"

namespace weightmap::lora {

// Per-worker working space; grows to the tile size and stays there.
struct TileScratch {
  std::vector<float> weights;
  std::vector<float> delta;
  std::vector<std::byte> raw;  // a diff's stored bytes
};

// How a tensor's bytes become f32 and back: the core's convert for f32, f16 and bf16 (one
// element at a time), a LoraQuantCodec for a quantized type (a row of the file shape's
// innermost dimension at a time: ggml quantizes row by row).
struct TensorCodec {
  DType dtype = DType::F32;
  const LoraQuantCodec* quantized = nullptr;
  std::uint64_t unit_elements = 1;  // elements converted together
  std::uint64_t unit_bytes = 0;     // their bytes

  std::uint64_t bytes_of(std::uint64_t elements) const {
    return elements / unit_elements * unit_bytes;
  }
};

// The codec for a base tensor of type `dtype` and file shape `shape` that a LoRA patches.
// Throws Error(unsupported) naming `tensor` in `file`: "quantized base tensor X needs the
// ggml adapter" when it is quantized and `quantized` is null, rows that are not whole
// blocks, a type the codec refuses (its own sentence), or a type that is neither float nor
// quantized.
TensorCodec tensor_codec(DType dtype, std::span<const std::uint64_t> shape,
                         const LoraQuantCodec* quantized, std::string_view tensor,
                         const std::string& file);

// Throws Error(unsupported) naming `target`'s tensor in `file` when its rows do not start
// and end on whole units of `codec` (rows of a quantized type: only a slice of a 1-D
// quantized tensor can cut one), so add_patches never converts part of a unit.
void check_whole_units(const TensorCodec& codec, const LoraTarget& target, const std::string& file);

// Elements per tile: about `tile_elements`, a whole number of the codec's units, at least one.
std::size_t tile_elements_for(const TensorCodec& codec, std::size_t tile_elements);

// Sizes `scratch` for tiles of `tile` elements (tile_elements_for) of `patches`, so that
// add_patches allocates nothing (it may run under the fault guard).
void reserve_scratch(TileScratch& scratch, std::size_t tile,
                     std::span<const PreparedPatch* const> patches);

// `bytes` holds elements [first, first + count) of a [rows, cols] tensor; both are whole
// units of `codec`. Each patch is added in turn and written back in the tensor's type before
// the next, so patches applied together give the same bytes as patches applied one after
// another: W = round(W + scale * (up x down)), the product summed over the rank in order, in
// f32 (round: to the float type, or requantized by the codec).
void add_patches(const TensorCodec& codec, std::span<std::byte> bytes, std::uint64_t first,
                 std::uint64_t count, std::span<const PreparedPatch* const> patches,
                 std::size_t tile_elements, TileScratch& scratch);

}  // namespace weightmap::lora
