// Finds the first repeated name in a list of names (metadata keys, tensor names). It runs once
// per tensor on the hot path of opening a model, so it is an open-addressing table of indices
// into the caller's names: no node per entry and no copy of any name.
#pragma once

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

}  // namespace weightmap::format
