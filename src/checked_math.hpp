// Overflow-checked unsigned arithmetic, for sizes and offsets that come from untrusted files.
// The one place that uses the compiler's overflow builtins (a port to a compiler without them
// changes this file only).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace weightmap {

[[nodiscard]] constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a,
                                                                 std::uint64_t b) noexcept {
  std::uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

[[nodiscard]] constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a,
                                                                 std::uint64_t b) noexcept {
  std::uint64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// The product of `dims` (1 for none): a shape's element count. Empty when it overflows.
[[nodiscard]] constexpr std::optional<std::uint64_t> checked_product(
    std::span<const std::uint64_t> dims) noexcept {
  std::uint64_t out = 1;
  for (const std::uint64_t dim : dims) {
    const auto next = checked_mul(out, dim);
    if (!next) return std::nullopt;
    out = *next;
  }
  return out;
}

}  // namespace weightmap
