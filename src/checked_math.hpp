// Overflow-checked unsigned arithmetic, for sizes and offsets that come from untrusted files.
// The one place that uses the compiler's overflow builtins, where platform.hpp says there are
// some; elsewhere the same checks are plain comparisons.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>

#include "platform.hpp"

namespace weightmap {

[[nodiscard]] constexpr std::optional<std::uint64_t> checked_mul(std::uint64_t a,
                                                                 std::uint64_t b) noexcept {
#if WEIGHTMAP_HAS_OVERFLOW_BUILTINS
  std::uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
#else
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
#endif
}

[[nodiscard]] constexpr std::optional<std::uint64_t> checked_add(std::uint64_t a,
                                                                 std::uint64_t b) noexcept {
#if WEIGHTMAP_HAS_OVERFLOW_BUILTINS
  std::uint64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
#else
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return std::nullopt;
  return a + b;
#endif
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
