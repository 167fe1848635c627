// checked_math.hpp: the overflow checks every reader's sizes and offsets go through.
#include "checked_math.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>

namespace weightmap {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

TEST(CheckedMath, MultiplyGivesTheProductUpToTheLargestValue) {
  EXPECT_EQ(checked_mul(0, kMax), 0u);
  EXPECT_EQ(checked_mul(kMax, 1), kMax);
  EXPECT_EQ(checked_mul(std::uint64_t{1} << 32, (std::uint64_t{1} << 32) - 1),
            kMax - ((std::uint64_t{1} << 32) - 1));
}

TEST(CheckedMath, MultiplyPastTheLargestValueIsEmpty) {
  EXPECT_FALSE(checked_mul(std::uint64_t{1} << 32, std::uint64_t{1} << 32));
  EXPECT_FALSE(checked_mul(kMax, 2));
}

TEST(CheckedMath, AddPastTheLargestValueIsEmpty) {
  EXPECT_EQ(checked_add(kMax - 1, 1), kMax);
  EXPECT_FALSE(checked_add(kMax, 1));
  EXPECT_FALSE(checked_add(kMax / 2 + 1, kMax / 2 + 1));
}

TEST(CheckedMath, ProductOfAShapeIsEmptyWhenItOverflows) {
  EXPECT_EQ(checked_product({}), 1u);
  constexpr std::array<std::uint64_t, 3> shape{4096, 4096, 3};
  EXPECT_EQ(checked_product(shape), 4096u * 4096u * 3u);
  constexpr std::array<std::uint64_t, 3> huge{std::uint64_t{1} << 40, std::uint64_t{1} << 30, 1};
  EXPECT_FALSE(checked_product(huge));
  static_assert(checked_mul(3, 5) == 15u, "usable in constant expressions");
}

}  // namespace
}  // namespace weightmap
