// The checks every reader makes of a tensor index, whatever its format: repeated names and
// overlapping byte ranges (and, in checked_math.hpp, sizes that overflow). Each reader words
// the error itself, naming the field of its own format where the fault lies.
//
// find_repeated_name runs once per tensor on the hot path of opening a model, so it is an
// open-addressing table of indices into the caller's names: no node per entry and no copy of
// any name.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace weightmap::format {

// `name_of(i)` returns the i-th name as a string_view; the names must stay put while the
// search runs. Returns the indices of the first name seen twice and of its repeat.
template <typename NameOf>
std::optional<std::pair<std::size_t, std::size_t>> find_repeated_name(std::size_t count,
                                                                      NameOf name_of) {
  if (count < 2) return std::nullopt;
  constexpr std::size_t kEmpty = SIZE_MAX;
  // At most half full, so probe sequences stay short.
  const std::size_t capacity = std::bit_ceil(count * 2);
  const std::size_t mask = capacity - 1;
  std::vector<std::size_t> slots(capacity, kEmpty);
  const std::hash<std::string_view> hash;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string_view name = name_of(i);
    for (std::size_t slot = hash(name) & mask;; slot = (slot + 1) & mask) {
      if (slots[slot] == kEmpty) {
        slots[slot] = i;
        break;
      }
      if (name_of(slots[slot]) == name) return std::pair{slots[slot], i};
    }
  }
  return std::nullopt;
}

// `range_of(i)` returns the i-th byte range as {offset, bytes}. Returns the indices of the
// first pair found to share a byte: {an earlier range, one that starts inside it}, in order of
// offsets; empty ranges overlap nothing.
template <typename RangeOf>
std::optional<std::pair<std::size_t, std::size_t>> find_overlap(std::size_t count,
                                                                RangeOf range_of) {
  std::vector<std::size_t> order;
  order.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (range_of(i).second != 0) order.push_back(i);
  }
  const auto by_offset = [&](std::size_t a, std::size_t b) {
    return range_of(a).first < range_of(b).first;
  };
  // Writers lay tensors out in file order, so the sort is usually a no-op check.
  if (!std::is_sorted(order.begin(), order.end(), by_offset)) {
    std::stable_sort(order.begin(), order.end(), by_offset);
  }
  // Sorted by start, a range overlaps an earlier one iff it starts before the furthest end
  // seen so far (ranges come from a validated size and offset, so ends do not overflow).
  std::optional<std::size_t> furthest;
  std::uint64_t furthest_end = 0;
  for (const std::size_t i : order) {
    const auto [offset, bytes] = range_of(i);
    if (furthest && offset < furthest_end) return std::pair{*furthest, i};
    if (!furthest || offset + bytes > furthest_end) {
      furthest = i;
      furthest_end = offset + bytes;
    }
  }
  return std::nullopt;
}

}  // namespace weightmap::format
