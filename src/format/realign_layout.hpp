// Where realign puts the tensors of a safetensors file: an order that starts as many as it can
// on the alignment, and padding tensors where ordering alone cannot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace weightmap {

// One slot of the data area of a realigned safetensors file, in file order.
struct SafetensorsSlot {
  std::optional<std::size_t> tensor;  // index into the sizes given; nullopt for padding
  std::uint64_t offset = 0;           // relative to the data area
  std::uint64_t bytes = 0;
};

struct SafetensorsLayout {
  std::vector<SafetensorsSlot> slots;
  std::vector<std::size_t> unaligned;  // tensors not on the alignment, in file order
  std::uint64_t padding_bytes = 0;     // in padding tensors
};

// Where realign puts tensors of these byte sizes in a safetensors data area that starts on
// `alignment` (a power of two): tensors whose size is a multiple of the alignment first (in
// the order given), then the rest by the largest power of two dividing their size, so each
// tensor starts at least on that power of two (and so on its element size). Pure.
SafetensorsLayout plan_safetensors_layout(std::span<const std::uint64_t> sizes,
                                          std::uint64_t alignment, bool padding_tensors);

}  // namespace weightmap
