// Order of tensors in a realigned safetensors file. The format allows no gaps between
// tensors, so a tensor starts where the sizes of the tensors before it add up to: only
// ordering (and, when the caller allows it, padding tensors) can put starts on a boundary.
#include "format/realign_layout.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <numeric>

#include "weightmap/model.hpp"
#include "weightmap/realign.hpp"

namespace weightmap {
namespace {

// The largest power of two dividing `size`, as an exponent capped at the alignment's (a
// size of 0 divides by everything: it fits anywhere).
int size_alignment_exponent(std::uint64_t size, int alignment_exponent) {
  if (size == 0) return alignment_exponent;
  return std::min(std::countr_zero(size), alignment_exponent);
}

constexpr std::string_view kPaddingPrefix = "__padding_";
constexpr std::string_view kPaddingSuffix = "__";

}  // namespace

std::string padding_tensor_name(std::size_t n) {
  return fmt::format("{}{}{}", kPaddingPrefix, n, kPaddingSuffix);
}

bool is_padding_tensor(const TensorInfo& tensor) {
  const std::string_view name = tensor.name;
  if (tensor.dtype != DType::U8 || name.size() <= kPaddingPrefix.size() + kPaddingSuffix.size() ||
      !name.starts_with(kPaddingPrefix) || !name.ends_with(kPaddingSuffix)) {
    return false;
  }
  const std::string_view number = name.substr(
      kPaddingPrefix.size(), name.size() - kPaddingPrefix.size() - kPaddingSuffix.size());
  return !number.empty() &&
         std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
}

SafetensorsLayout plan_safetensors_layout(std::span<const std::uint64_t> sizes,
                                          std::uint64_t alignment, bool padding_tensors) {
  const int exponent = std::countr_zero(alignment);
  std::vector<std::size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  // Descending by the power of two dividing each size: every tensor then starts after sizes
  // that are all multiples of its own power of two, so it starts on that power of two.
  // Stable, so tensors of whole multiples of the alignment keep their relative order.
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return size_alignment_exponent(sizes[a], exponent) >
           size_alignment_exponent(sizes[b], exponent);
  });

  SafetensorsLayout layout;
  layout.slots.reserve(sizes.size());
  std::uint64_t offset = 0;
  for (const std::size_t tensor : order) {
    if (const std::uint64_t gap = (alignment - offset % alignment) % alignment; gap != 0) {
      if (padding_tensors) {
        layout.slots.push_back({std::nullopt, offset, gap});
        layout.padding_bytes += gap;
        offset += gap;
      } else {
        layout.unaligned.push_back(tensor);
      }
    }
    layout.slots.push_back({tensor, offset, sizes[tensor]});
    offset += sizes[tensor];
  }
  return layout;
}

bool realign_needs_padding_tensors(const Model& model, std::uint32_t file,
                                   std::uint32_t alignment) {
  if (file >= model.files().size() || model.files()[file].format != FileFormat::safetensors) {
    return false;
  }
  std::vector<std::uint64_t> sizes;
  for (const TensorInfo& tensor : model.tensors()) {
    if (tensor.file == file) sizes.push_back(tensor.nbytes);
  }
  return !plan_safetensors_layout(sizes, alignment, false).unaligned.empty();
}

}  // namespace weightmap
