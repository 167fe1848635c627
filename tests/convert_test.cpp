#include "weightmap/convert.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "dtype/convert_impl.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

using detail::ConvertKernels;

// ---- an oracle independent of the kernels: decode in double, round by searching a table ----

struct MiniFloat {
  int exponent_bits;
  int mantissa_bits;
  bool has_infinity;  // false: e4m3fn, where only all-ones exponent AND mantissa is NaN
};
constexpr MiniFloat kF16{5, 10, true};
constexpr MiniFloat kBf16{8, 7, true};
constexpr MiniFloat kE4M3{4, 3, false};
constexpr MiniFloat kE5M2{5, 2, true};

bool is_nan(MiniFloat f, std::uint32_t bits) {
  const std::uint32_t exponent = (bits >> f.mantissa_bits) & ((1u << f.exponent_bits) - 1);
  const std::uint32_t mantissa = bits & ((1u << f.mantissa_bits) - 1);
  const bool exponent_all_ones = exponent == (1u << f.exponent_bits) - 1;
  if (f.has_infinity) return exponent_all_ones && mantissa != 0;
  return exponent_all_ones && mantissa == (1u << f.mantissa_bits) - 1;
}

// The value of a non-NaN pattern.
double decode(MiniFloat f, std::uint32_t bits) {
  const int width = 1 + f.exponent_bits + f.mantissa_bits;
  const bool negative = ((bits >> (width - 1)) & 1u) != 0;
  const int exponent = static_cast<int>((bits >> f.mantissa_bits) & ((1u << f.exponent_bits) - 1));
  const int mantissa = static_cast<int>(bits & ((1u << f.mantissa_bits) - 1));
  const int bias = (1 << (f.exponent_bits - 1)) - 1;
  double value = 0;
  if (f.has_infinity && exponent == (1 << f.exponent_bits) - 1) {
    value = std::numeric_limits<double>::infinity();
  } else if (exponent == 0) {
    value = std::ldexp(mantissa, 1 - bias - f.mantissa_bits);
  } else {
    value = std::ldexp((1 << f.mantissa_bits) + mantissa, exponent - bias - f.mantissa_bits);
  }
  return negative ? -value : value;
}

std::uint32_t f32_bits(float value) { return std::bit_cast<std::uint32_t>(value); }
float f32_from_bits(std::uint32_t bits) { return std::bit_cast<float>(bits); }

// Expected f32 bits when widening a pattern: exact value, NaN quiet with sign and payload.
std::uint32_t widened(MiniFloat f, std::uint32_t bits) {
  const int width = 1 + f.exponent_bits + f.mantissa_bits;
  if (is_nan(f, bits)) {
    const std::uint32_t sign = ((bits >> (width - 1)) & 1u) << 31;
    if (!f.has_infinity) return sign | 0x7fc00000u;  // e4m3fn's one NaN has no payload to keep
    const std::uint32_t payload = (bits & ((1u << f.mantissa_bits) - 1)) << (23 - f.mantissa_bits);
    return sign | 0x7fc00000u | payload;
  }
  return f32_bits(static_cast<float>(decode(f, bits)));
}

// Rounds to a 16-bit format by nearest-even search over its positive values. The pattern
// after the largest finite one is infinity; it sits in the table at the value the next
// exponent would give, which makes "overflow" just another rounding.
class NearestEven16 {
 public:
  explicit NearestEven16(MiniFloat f) : format_(f) {
    const std::uint32_t infinity = ((1u << f.exponent_bits) - 1) << f.mantissa_bits;
    for (std::uint32_t bits = 0; bits < infinity; ++bits) values_.push_back(decode(f, bits));
    const int bias = (1 << (f.exponent_bits - 1)) - 1;
    values_.push_back(std::ldexp(1.0, (1 << f.exponent_bits) - 1 - bias));
  }

  // Result for a non-NaN f32 value.
  std::uint16_t round(float x) const {
    const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double magnitude = std::fabs(static_cast<double>(x));
    const auto infinity = static_cast<std::uint16_t>(values_.size() - 1);
    if (magnitude >= values_.back()) return sign | infinity;
    const auto above = std::lower_bound(values_.begin(), values_.end(), magnitude);
    auto index = static_cast<std::uint16_t>(above - values_.begin());
    if (*above != magnitude) {
      const double up = *above - magnitude;
      const double down = magnitude - *(above - 1);
      if (down < up || (down == up && (index & 1u) != 0)) --index;
    }
    return static_cast<std::uint16_t>(sign | index);
  }

  const MiniFloat& format() const { return format_; }

 private:
  MiniFloat format_;
  std::vector<double> values_;
};

const NearestEven16& f16_rounding() {
  static const NearestEven16 table(kF16);
  return table;
}
const NearestEven16& bf16_rounding() {
  static const NearestEven16 table(kBf16);
  return table;
}

// Checks a narrowed result for one f32 input: the oracle's pattern, or for NaN a quiet NaN of
// the same sign.
void expect_narrowed(const NearestEven16& oracle, std::uint32_t input, std::uint16_t got) {
  const float x = f32_from_bits(input);
  if (std::isnan(x)) {
    EXPECT_TRUE(is_nan(oracle.format(), got)) << std::hex << input << " -> " << got;
    const auto quiet_bit = static_cast<std::uint16_t>(1u << (oracle.format().mantissa_bits - 1));
    EXPECT_NE(got & quiet_bit, 0) << std::hex << input << " -> " << got;
    EXPECT_EQ(got >> 15, input >> 31) << std::hex << input << " -> " << got;
    return;
  }
  EXPECT_EQ(got, oracle.round(x)) << std::hex << "input 0x" << input << " (" << x << ")";
}

std::vector<std::uint16_t> all_16_bit_patterns() {
  std::vector<std::uint16_t> patterns(1u << 16);
  for (std::uint32_t i = 0; i < patterns.size(); ++i) patterns[i] = static_cast<std::uint16_t>(i);
  return patterns;
}

// 2^24 f32 patterns spread over all 2^32: every exponent, sign and NaN payload region, with
// varying low bits so ties and near-ties show up.
std::vector<std::uint32_t> spread_f32_patterns() {
  std::vector<std::uint32_t> patterns(1u << 24);
  for (std::uint32_t i = 0; i < patterns.size(); ++i) {
    patterns[i] = (i << 8) | ((i * 167u + (i >> 11)) & 0xffu);
  }
  return patterns;
}

// ---- every kernel table, forced ----

class ConvertKernelsTest : public ::testing::TestWithParam<std::string_view> {
 protected:
  void SetUp() override {
    if (GetParam() == "scalar") {
      kernels_ = &detail::scalar_kernels();
    } else {
      kernels_ = detail::avx2_kernels();
      if (kernels_ == nullptr) GTEST_SKIP() << "this CPU (or build target) has no AVX2+F16C";
    }
  }

  template <typename To, typename From>
  std::vector<To> run(DType from, const std::vector<From>& in, DType to) const {
    std::vector<To> out(in.size());
    detail::convert_with(*kernels_, from, std::as_bytes(std::span(in)), to,
                         std::as_writable_bytes(std::span(out)), in.size());
    return out;
  }

  const ConvertKernels* kernels_ = nullptr;
};

INSTANTIATE_TEST_SUITE_P(Convert, ConvertKernelsTest, ::testing::Values("scalar", "avx2+f16c"),
                         [](const auto& test_param) {
                           return test_param.param == "scalar" ? std::string("Scalar")
                                                               : std::string("Avx2F16c");
                         });

TEST_P(ConvertKernelsTest, F16ToF32AllPatternsMatchOracle) {
  const auto in = all_16_bit_patterns();
  const auto out = run<std::uint32_t>(DType::F16, in, DType::F32);
  for (std::size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(out[i], widened(kF16, in[i])) << std::hex << "f16 0x" << in[i];
  }
  EXPECT_EQ(f32_from_bits(out[0x3c00]), 1.0f);
  EXPECT_EQ(f32_from_bits(out[0x7bff]), 65504.0f);
  EXPECT_EQ(f32_from_bits(out[0x0001]), std::ldexp(1.0f, -24));
  EXPECT_EQ(out[0x7c00], 0x7f800000u);
  EXPECT_EQ(out[0x7c01], 0x7fc02000u);  // signalling NaN comes out quiet, payload kept
  EXPECT_EQ(out[0xfe00], 0xffc00000u);
}

TEST_P(ConvertKernelsTest, Bf16ToF32AllPatternsMatchOracle) {
  const auto in = all_16_bit_patterns();
  const auto out = run<std::uint32_t>(DType::BF16, in, DType::F32);
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (is_nan(kBf16, in[i])) {
      // bf16 is the top half of an f32: widening keeps the pattern exactly.
      ASSERT_EQ(out[i], std::uint32_t{in[i]} << 16) << std::hex << "bf16 0x" << in[i];
    } else {
      ASSERT_EQ(out[i], widened(kBf16, in[i])) << std::hex << "bf16 0x" << in[i];
    }
  }
  EXPECT_EQ(f32_from_bits(out[0x3f80]), 1.0f);
  EXPECT_EQ(out[0x7f80], 0x7f800000u);
}

TEST_P(ConvertKernelsTest, F8E4M3ToF32AllPatternsMatchOracleAndKnownValues) {
  std::vector<std::uint8_t> in(256);
  for (unsigned i = 0; i < 256; ++i) in[i] = static_cast<std::uint8_t>(i);
  const auto out = run<std::uint32_t>(DType::F8_E4M3, in, DType::F32);
  for (unsigned i = 0; i < 256; ++i) ASSERT_EQ(out[i], widened(kE4M3, i)) << "e4m3 " << i;
  EXPECT_EQ(f32_from_bits(out[0x7e]), 448.0f);
  EXPECT_EQ(f32_from_bits(out[0xfe]), -448.0f);
  EXPECT_TRUE(std::isnan(f32_from_bits(out[0x7f])));
  EXPECT_TRUE(std::isnan(f32_from_bits(out[0xff])));
  EXPECT_EQ(f32_from_bits(out[0x78]), 256.0f);  // exponent all ones is still a number
  EXPECT_EQ(f32_from_bits(out[0x08]), std::ldexp(1.0f, -6));
  EXPECT_EQ(f32_from_bits(out[0x01]), std::ldexp(1.0f, -9));
  EXPECT_EQ(f32_from_bits(out[0x07]), 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(f32_from_bits(out[0x38]), 1.0f);
  EXPECT_EQ(out[0x80], 0x80000000u);
  for (unsigned i = 0; i < 256; ++i) {
    if (i != 0x7f && i != 0xff) {
      EXPECT_TRUE(std::isfinite(f32_from_bits(out[i]))) << i;
    }
  }
}

TEST_P(ConvertKernelsTest, F8E5M2ToF32AllPatternsMatchOracleAndKnownValues) {
  std::vector<std::uint8_t> in(256);
  for (unsigned i = 0; i < 256; ++i) in[i] = static_cast<std::uint8_t>(i);
  const auto out = run<std::uint32_t>(DType::F8_E5M2, in, DType::F32);
  for (unsigned i = 0; i < 256; ++i) ASSERT_EQ(out[i], widened(kE5M2, i)) << "e5m2 " << i;
  EXPECT_EQ(f32_from_bits(out[0x7c]), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f32_from_bits(out[0xfc]), -std::numeric_limits<float>::infinity());
  for (unsigned nan : {0x7du, 0x7eu, 0x7fu, 0xfdu}) {
    EXPECT_TRUE(std::isnan(f32_from_bits(out[nan]))) << nan;
  }
  EXPECT_EQ(f32_from_bits(out[0x7b]), 57344.0f);
  EXPECT_EQ(f32_from_bits(out[0x04]), std::ldexp(1.0f, -14));
  EXPECT_EQ(f32_from_bits(out[0x01]), std::ldexp(1.0f, -16));
  EXPECT_EQ(f32_from_bits(out[0x3c]), 1.0f);
}

TEST_P(ConvertKernelsTest, F32ToF16RoundTripsEveryF16Value) {
  std::vector<std::uint16_t> f16;
  std::vector<float> f32;
  for (std::uint32_t bits = 0; bits < (1u << 16); ++bits) {
    if (is_nan(kF16, bits)) continue;
    f16.push_back(static_cast<std::uint16_t>(bits));
    f32.push_back(static_cast<float>(decode(kF16, bits)));
  }
  const auto out = run<std::uint16_t>(DType::F32, f32, DType::F16);
  for (std::size_t i = 0; i < f16.size(); ++i) ASSERT_EQ(out[i], f16[i]) << std::hex << f16[i];
}

TEST_P(ConvertKernelsTest, F32ToBf16RoundTripsEveryBf16Value) {
  std::vector<std::uint16_t> bf16;
  std::vector<float> f32;
  for (std::uint32_t bits = 0; bits < (1u << 16); ++bits) {
    if (is_nan(kBf16, bits)) continue;
    bf16.push_back(static_cast<std::uint16_t>(bits));
    f32.push_back(static_cast<float>(decode(kBf16, bits)));
  }
  const auto out = run<std::uint16_t>(DType::F32, f32, DType::BF16);
  for (std::size_t i = 0; i < bf16.size(); ++i) ASSERT_EQ(out[i], bf16[i]) << std::hex << bf16[i];
}

// Every midpoint between neighbouring positive values of a 16-bit format (the last one
// between the largest finite value and infinity), and the f32 values just either side.
std::vector<float> midpoints_and_neighbours(MiniFloat f) {
  std::vector<float> out;
  const std::uint32_t infinity = ((1u << f.exponent_bits) - 1) << f.mantissa_bits;
  const int bias = (1 << (f.exponent_bits - 1)) - 1;
  for (std::uint32_t bits = 0; bits < infinity; ++bits) {
    const double low = decode(f, bits);
    const double high = bits + 1 < infinity ? decode(f, bits + 1)
                                            : std::ldexp(1.0, (1 << f.exponent_bits) - 1 - bias);
    const auto mid = static_cast<float>((low + high) / 2);  // exact: one more bit than f has
    EXPECT_EQ(static_cast<double>(mid), (low + high) / 2);
    out.push_back(mid);
    out.push_back(std::nextafter(mid, 0.0f));
    out.push_back(std::nextafter(mid, std::numeric_limits<float>::infinity()));
    out.push_back(-mid);
  }
  return out;
}

TEST_P(ConvertKernelsTest, F32ToF16TiesGoToEven) {
  const auto in = midpoints_and_neighbours(kF16);
  const auto out = run<std::uint16_t>(DType::F32, in, DType::F16);
  for (std::size_t i = 0; i < in.size(); ++i)
    expect_narrowed(f16_rounding(), f32_bits(in[i]), out[i]);
  // Spot checks that do not lean on the oracle.
  const auto spot = run<std::uint16_t>(
      DType::F32, std::vector<float>{1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 0x1p-25f, 3 * 0x1p-25f},
      DType::F16);
  EXPECT_EQ(spot[0], 0x3c00);  // 1 + half an ulp -> 1 (even)
  EXPECT_EQ(spot[1], 0x3c02);  // 1 + 1.5 ulp -> 1 + 2 ulp (even)
  EXPECT_EQ(spot[2], 0x0000);  // half the smallest subnormal -> 0 (even)
  EXPECT_EQ(spot[3], 0x0002);  // 1.5 x smallest subnormal -> 2 x (even)
}

TEST_P(ConvertKernelsTest, F32ToBf16TiesGoToEven) {
  const auto in = midpoints_and_neighbours(kBf16);
  const auto out = run<std::uint16_t>(DType::F32, in, DType::BF16);
  for (std::size_t i = 0; i < in.size(); ++i) {
    expect_narrowed(bf16_rounding(), f32_bits(in[i]), out[i]);
  }
  const auto spot = run<std::uint16_t>(
      DType::F32, std::vector<std::uint32_t>{0x3f808000u, 0x3f818000u, 0x3f808001u}, DType::BF16);
  EXPECT_EQ(spot[0], 0x3f80);
  EXPECT_EQ(spot[1], 0x3f82);
  EXPECT_EQ(spot[2], 0x3f81);
}

TEST_P(ConvertKernelsTest, F32ToF16OverflowGivesInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> in{65504.0f, 65519.99f, 65520.0f,
                              65536.0f, 1e10f,     std::numeric_limits<float>::max(),
                              inf,      -65520.0f, -inf};
  const auto out = run<std::uint16_t>(DType::F32, in, DType::F16);
  EXPECT_EQ(out, (std::vector<std::uint16_t>{0x7bff, 0x7bff, 0x7c00, 0x7c00, 0x7c00, 0x7c00, 0x7c00,
                                             0xfc00, 0xfc00}));
  const auto bf16 = run<std::uint16_t>(
      DType::F32, std::vector<std::uint32_t>{0x7f7fffffu, 0x7f7f7fffu, 0xff7fffffu}, DType::BF16);
  EXPECT_EQ(bf16, (std::vector<std::uint16_t>{0x7f80, 0x7f7f, 0xff80}));
}

TEST_P(ConvertKernelsTest, F32ToF16SubnormalResults) {
  const std::vector<float> in{
      0x1p-14f,  // smallest normal
      0x1p-15f,
      0x1p-24f,
      0x1.8p-24f,
      0x1p-25f,
      0x1.000002p-25f,
      0x1p-26f,
      0x1.ffcp-15f,  // a tie between the largest subnormal and the smallest normal
      std::numeric_limits<float>::denorm_min(),
      -0x1p-24f,
      -0.0f};
  const auto out = run<std::uint16_t>(DType::F32, in, DType::F16);
  EXPECT_EQ(out, (std::vector<std::uint16_t>{0x0400, 0x0200, 0x0001, 0x0002, 0x0000, 0x0001, 0x0000,
                                             0x0400, 0x0000, 0x8001, 0x8000}));
  for (std::size_t i = 0; i < in.size(); ++i)
    expect_narrowed(f16_rounding(), f32_bits(in[i]), out[i]);
}

TEST_P(ConvertKernelsTest, F32NaNStaysNaN) {
  const std::vector<std::uint32_t> nans{0x7f800001u, 0x7fc00000u, 0xffc00000u, 0x7fffffffu,
                                        0xff800001u, 0x7fa00000u, 0x7f801fffu, 0x7f802000u};
  const auto f16 = run<std::uint16_t>(DType::F32, nans, DType::F16);
  const auto bf16 = run<std::uint16_t>(DType::F32, nans, DType::BF16);
  for (std::size_t i = 0; i < nans.size(); ++i) {
    expect_narrowed(f16_rounding(), nans[i], f16[i]);
    expect_narrowed(bf16_rounding(), nans[i], bf16[i]);
  }
  EXPECT_EQ(bf16[0], 0x7fc0);  // the payload sits below bf16's bits: must not become infinity
  EXPECT_EQ(bf16[3], 0x7fff);  // all-ones payload must not carry into the sign
  EXPECT_EQ(f16[1], 0x7e00);
  EXPECT_EQ(f16[2], 0xfe00);
  EXPECT_EQ(f16[5], 0x7f00);  // leading payload bits kept
}

TEST_P(ConvertKernelsTest, F32SpreadSweepMatchesOracle) {
  const auto in = spread_f32_patterns();
  const auto f16 = run<std::uint16_t>(DType::F32, in, DType::F16);
  const auto bf16 = run<std::uint16_t>(DType::F32, in, DType::BF16);
  for (std::size_t i = 0; i < in.size(); ++i) {
    expect_narrowed(f16_rounding(), in[i], f16[i]);
    expect_narrowed(bf16_rounding(), in[i], bf16[i]);
    if (HasFailure()) FAIL() << "stopped at pattern 0x" << std::hex << in[i];
  }
}

TEST_P(ConvertKernelsTest, F16ToBf16AllPatterns) {
  const auto in = all_16_bit_patterns();
  const auto out = run<std::uint16_t>(DType::F16, in, DType::BF16);
  for (std::size_t i = 0; i < in.size(); ++i) {
    expect_narrowed(bf16_rounding(), widened(kF16, in[i]), out[i]);
    if (HasFailure()) FAIL() << "stopped at f16 0x" << std::hex << in[i];
  }
  EXPECT_EQ(out[0x3c00], 0x3f80);
  EXPECT_EQ(out[0x3c01], 0x3f80);  // 1 + 2^-10 is below bf16's precision
  EXPECT_EQ(out[0x3c04], 0x3f80);  // 1 + 2^-8: a tie, to even
  EXPECT_EQ(out[0x3c0c], 0x3f82);  // 1 + 3 x 2^-8: a tie, to even
  EXPECT_EQ(out[0x7c00], 0x7f80);
}

TEST_P(ConvertKernelsTest, Bf16ToF16AllPatterns) {
  const auto in = all_16_bit_patterns();
  const auto out = run<std::uint16_t>(DType::BF16, in, DType::F16);
  for (std::size_t i = 0; i < in.size(); ++i) {
    expect_narrowed(f16_rounding(), std::uint32_t{in[i]} << 16, out[i]);
    if (HasFailure()) FAIL() << "stopped at bf16 0x" << std::hex << in[i];
  }
  EXPECT_EQ(out[0x3f80], 0x3c00);
  EXPECT_EQ(out[0x4780], 0x7c00);  // 65536 overflows f16
  EXPECT_EQ(out[0x7f81], 0x7e08);  // a signalling NaN comes out quiet, payload kept
}

TEST_P(ConvertKernelsTest, F64ToF32RoundsOverflowsAndKeepsNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> in{1.0,
                               1.0 + 0x1p-24,      // tie -> 1 (even)
                               1.0 + 3 * 0x1p-24,  // tie -> 1 + 2^-22 (even)
                               1.0 + 0x1p-24 + 0x1p-50,
                               0x1p-149,
                               0x1p-150,  // half the smallest subnormal -> 0
                               0x1.8p-149,
                               0x1p-126,
                               3.4028235677973366e38,  // FLT_MAX + half an ulp -> inf
                               1e39,
                               -1e300,
                               std::numeric_limits<double>::infinity(),
                               nan,
                               -nan,
                               std::bit_cast<double>(0x7ff0000000000001ull),  // signalling
                               std::numeric_limits<double>::denorm_min(),
                               -0.0};
  const auto out = run<std::uint32_t>(DType::F64, in, DType::F32);
  EXPECT_EQ(out[0], f32_bits(1.0f));
  EXPECT_EQ(out[1], f32_bits(1.0f));
  EXPECT_EQ(out[2], f32_bits(1.0f + 0x1p-22f));
  EXPECT_EQ(out[3], f32_bits(1.0f + 0x1p-23f));
  EXPECT_EQ(out[4], 0x00000001u);
  EXPECT_EQ(out[5], 0x00000000u);
  EXPECT_EQ(out[6], 0x00000002u);
  EXPECT_EQ(out[7], 0x00800000u);
  EXPECT_EQ(out[8], 0x7f800000u);
  EXPECT_EQ(out[9], 0x7f800000u);
  EXPECT_EQ(out[10], 0xff800000u);
  EXPECT_EQ(out[11], 0x7f800000u);
  EXPECT_TRUE(std::isnan(f32_from_bits(out[12])));
  EXPECT_TRUE(std::isnan(f32_from_bits(out[13])));
  EXPECT_TRUE(std::signbit(f32_from_bits(out[13])));
  EXPECT_TRUE(std::isnan(f32_from_bits(out[14])));
  EXPECT_EQ(out[15], 0x00000000u);
  EXPECT_EQ(out[16], 0x80000000u);
}

TEST_P(ConvertKernelsTest, I64ToI32InRangeAndAtLimits) {
  const std::vector<std::int64_t> in{0,
                                     1,
                                     -1,
                                     123456789,
                                     std::numeric_limits<std::int32_t>::min(),
                                     std::numeric_limits<std::int32_t>::max()};
  const auto out = run<std::int32_t>(DType::I64, in, DType::I32);
  EXPECT_EQ(
      out, (std::vector<std::int32_t>{0, 1, -1, 123456789, std::numeric_limits<std::int32_t>::min(),
                                      std::numeric_limits<std::int32_t>::max()}));
}

TEST_P(ConvertKernelsTest, I64ToI32OverflowNamesIndexAndValue) {
  const struct {
    std::int64_t value;
    const char* text;
  } cases[] = {
      {2147483648,
       "i64 element 5 is 2147483648, which does not fit in i32 (range -2147483648 to "
       "2147483647)"},
      {-2147483649,
       "i64 element 5 is -2147483649, which does not fit in i32 (range -2147483648 "
       "to 2147483647)"},
      {std::numeric_limits<std::int64_t>::min(),
       "i64 element 5 is -9223372036854775808, which does not fit in i32 (range -2147483648 to "
       "2147483647)"},
  };
  for (const auto& c : cases) {
    std::vector<std::int64_t> in{0, 1, 2, 3, 4, c.value, 6, 7, std::int64_t{1} << 40};
    try {
      run<std::int32_t>(DType::I64, in, DType::I32);
      FAIL() << "no error for " << c.value;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::malformed);
      EXPECT_STREQ(e.what(), c.text);
    }
  }
}

// Lengths around the vector width and unaligned pointers: every kernel must agree with the
// scalar reference on random bits and write nothing past the last element.
TEST_P(ConvertKernelsTest, OddLengthsAndUnalignedBuffersMatchScalar) {
  const DType pairs[][2] = {
      {DType::F16, DType::F32},     {DType::BF16, DType::F32}, {DType::F8_E4M3, DType::F32},
      {DType::F8_E5M2, DType::F32}, {DType::F64, DType::F32},  {DType::F32, DType::F16},
      {DType::F32, DType::BF16},    {DType::F16, DType::BF16}, {DType::BF16, DType::F16},
      {DType::I64, DType::I32},     {DType::F32, DType::F32}};
  std::mt19937_64 random(42);
  for (const auto& [from, to] : pairs) {
    for (std::size_t n : {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 100, 1001}) {
      const auto src_bytes = static_cast<std::size_t>(*dtype_bytes_for(from, n));
      const auto dst_bytes = static_cast<std::size_t>(*dtype_bytes_for(to, n));
      // One byte of offset makes every pointer unaligned; 64 guard bytes catch overruns.
      std::vector<std::byte> src(src_bytes + 1);
      for (auto& b : src) b = static_cast<std::byte>(random());
      if (from == DType::I64) {  // keep the values in i32 range: small little-endian numbers
        for (std::size_t i = 0; i < n; ++i) {
          const std::int64_t value = static_cast<std::int32_t>(random());
          std::memcpy(src.data() + 1 + 8 * i, &value, sizeof value);
        }
      }
      std::vector<std::byte> expected(dst_bytes + 65, std::byte{0xa5});
      std::vector<std::byte> got(dst_bytes + 65, std::byte{0xa5});
      const std::span<const std::byte> source(src.data() + 1, src_bytes);
      detail::convert_with(detail::scalar_kernels(), from, source, to,
                           std::span(expected.data() + 1, dst_bytes), n);
      detail::convert_with(*kernels_, from, source, to, std::span(got.data() + 1, dst_bytes), n);
      ASSERT_EQ(got, expected) << dtype_name(from) << " -> " << dtype_name(to) << ", " << n
                               << " elements";
      EXPECT_EQ(got[0], std::byte{0xa5});
      EXPECT_EQ(got[dst_bytes + 1], std::byte{0xa5});
    }
  }
}

// Outputs of several MiB take the vector kernels' streaming-store path, which first
// converts a few elements to reach 32-byte alignment; a destination that is not even
// element-aligned must fall back to ordinary stores.
TEST_P(ConvertKernelsTest, LargeOutputsMatchScalarAtEveryDestinationOffset) {
  const DType pairs[][2] = {{DType::F16, DType::F32},  {DType::BF16, DType::F32},
                            {DType::F64, DType::F32},  {DType::F32, DType::F16},
                            {DType::F32, DType::BF16}, {DType::F16, DType::BF16},
                            {DType::BF16, DType::F16}};
  constexpr std::size_t n = (std::size_t{5} << 20) / 2 + 13;  // over 4 MiB of output
  std::mt19937_64 random(7);
  std::vector<std::byte> src(8 * n);
  for (auto& b : src) b = static_cast<std::byte>(random());
  for (const auto& [from, to] : pairs) {
    const auto src_bytes = static_cast<std::size_t>(*dtype_bytes_for(from, n));
    const auto dst_bytes = static_cast<std::size_t>(*dtype_bytes_for(to, n));
    const std::span<const std::byte> source(src.data(), src_bytes);
    std::vector<std::byte> expected(dst_bytes);
    detail::convert_with(detail::scalar_kernels(), from, source, to, expected, n);
    for (std::size_t offset : {0, 1, 2, 4, 8, 30}) {
      std::vector<std::byte> got(dst_bytes + 64, std::byte{0xa5});
      detail::convert_with(*kernels_, from, source, to, std::span(got.data() + offset, dst_bytes),
                           n);
      ASSERT_TRUE(std::equal(expected.begin(), expected.end(), got.begin() + offset))
          << dtype_name(from) << " -> " << dtype_name(to) << ", destination offset " << offset;
      EXPECT_EQ(got[offset + dst_bytes], std::byte{0xa5});
    }
  }
}

// ---- dispatch ----

TEST(ConvertDispatch, ImplementationNameMatchesCpu) {
  const auto* avx2 = detail::avx2_kernels();
  EXPECT_EQ(convert_implementation(), avx2 != nullptr ? "avx2+f16c" : "scalar");
  EXPECT_EQ(&detail::active_kernels(), avx2 != nullptr ? avx2 : &detail::scalar_kernels());
}

TEST(ConvertDispatch, DispatchedF32NarrowingMatchesScalarBitForBit) {
  if (convert_implementation() == "scalar")
    GTEST_SKIP() << "dispatch picks the scalar kernels here";
  const auto in = spread_f32_patterns();
  for (DType to : {DType::F16, DType::BF16}) {
    std::vector<std::uint16_t> dispatched(in.size());
    std::vector<std::uint16_t> scalar(in.size());
    convert(DType::F32, std::as_bytes(std::span(in)), to,
            std::as_writable_bytes(std::span(dispatched)), in.size());
    detail::convert_with(detail::scalar_kernels(), DType::F32, std::as_bytes(std::span(in)), to,
                         std::as_writable_bytes(std::span(scalar)), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(dispatched[i], scalar[i]) << dtype_name(to) << " from f32 0x" << std::hex << in[i];
    }
  }
}

TEST(ConvertDispatch, DispatchedWideningMatchesScalarBitForBit) {
  if (convert_implementation() == "scalar")
    GTEST_SKIP() << "dispatch picks the scalar kernels here";
  const auto in = all_16_bit_patterns();
  for (DType from : {DType::F16, DType::BF16}) {
    for (DType to : {DType::F32, from == DType::F16 ? DType::BF16 : DType::F16}) {
      const auto out_bytes = static_cast<std::size_t>(*dtype_bytes_for(to, in.size()));
      std::vector<std::byte> dispatched(out_bytes);
      std::vector<std::byte> scalar(out_bytes);
      convert(from, std::as_bytes(std::span(in)), to, dispatched, in.size());
      detail::convert_with(detail::scalar_kernels(), from, std::as_bytes(std::span(in)), to, scalar,
                           in.size());
      EXPECT_EQ(dispatched, scalar) << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
}

// ---- the public contract ----

TEST(ConvertApi, CanConvertListsSupportedPairs) {
  for (auto [from, to] : {std::pair{DType::F16, DType::F32},
                          {DType::BF16, DType::F32},
                          {DType::F8_E4M3, DType::F32},
                          {DType::F8_E5M2, DType::F32},
                          {DType::F64, DType::F32},
                          {DType::F32, DType::F16},
                          {DType::F32, DType::BF16},
                          {DType::F16, DType::BF16},
                          {DType::BF16, DType::F16},
                          {DType::I64, DType::I32},
                          {DType::F32, DType::F32},
                          {DType::Q4_K, DType::Q4_K}}) {
    EXPECT_TRUE(can_convert(from, to)) << dtype_name(from) << " -> " << dtype_name(to);
  }
  for (auto [from, to] : {std::pair{DType::F32, DType::F8_E4M3},
                          {DType::F32, DType::F64},
                          {DType::I32, DType::I64},
                          {DType::Q4_0, DType::F32},
                          {DType::F32, DType::Q8_0},
                          {DType::F8_E4M3, DType::F16},
                          {DType::U8, DType::F32}}) {
    EXPECT_FALSE(can_convert(from, to)) << dtype_name(from) << " -> " << dtype_name(to);
  }
  EXPECT_FALSE(can_convert(static_cast<DType>(4), static_cast<DType>(4)));  // not a type
}

TEST(ConvertApi, SameTypeIsACopy) {
  const std::vector<std::uint8_t> q4(18 * 2, 0x5a);  // two q4_0 blocks
  std::vector<std::uint8_t> out(q4.size());
  convert(DType::Q4_0, std::as_bytes(std::span(q4)), DType::Q4_0,
          std::as_writable_bytes(std::span(out)), 64);
  EXPECT_EQ(out, q4);
  const std::vector<std::uint32_t> nan{0x7f800001u};  // a copy does not quiet NaNs
  std::vector<std::uint32_t> nan_out(1);
  convert(DType::F32, std::as_bytes(std::span(nan)), DType::F32,
          std::as_writable_bytes(std::span(nan_out)), 1);
  EXPECT_EQ(nan_out, nan);
}

template <typename F>
void expect_error(F&& call, ErrorCode code, const std::string& text) {
  try {
    call();
    ADD_FAILURE() << "no error; expected: " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code);
    EXPECT_EQ(std::string(e.what()), text);
  }
}

TEST(ConvertApi, UnsupportedPairNamesBothTypes) {
  std::vector<std::byte> buffer(64);
  expect_error([&] { convert(DType::F32, buffer, DType::Q4_0, buffer, 0); }, ErrorCode::unsupported,
               "converting f32 to q4_0 is not supported");
  expect_error([&] { convert(DType::I32, buffer, DType::I64, buffer, 0); }, ErrorCode::unsupported,
               "converting i32 to i64 is not supported");
  expect_error([&] { convert(static_cast<DType>(4), buffer, DType::F32, buffer, 0); },
               ErrorCode::unsupported, "converting type id 4 to f32 is not supported");
}

TEST(ConvertApi, BufferTooSmallIsInvalidArgument) {
  std::vector<std::byte> small(6);
  std::vector<std::byte> big(64);
  expect_error([&] { convert(DType::F16, small, DType::F32, big, 4); }, ErrorCode::invalid_argument,
               "the source buffer holds 6 bytes but 4 elements of f16 take 8 bytes");
  expect_error([&] { convert(DType::F16, big, DType::F32, small, 4); }, ErrorCode::invalid_argument,
               "the destination buffer holds 6 bytes but 4 elements of f32 take 16 bytes");
}

TEST(ConvertApi, PartialBlocksAndOverflowingCountsAreInvalidArgument) {
  std::vector<std::byte> buffer(64);
  std::vector<std::byte> other(64);
  expect_error([&] { convert(DType::Q4_0, buffer, DType::Q4_0, other, 31); },
               ErrorCode::invalid_argument,
               "cannot convert 31 elements of q4_0: not a whole number of 32-element blocks");
  expect_error(
      [&] { convert(DType::F16, buffer, DType::F32, other, std::uint64_t{1} << 62); },
      ErrorCode::invalid_argument,
      "cannot convert 4611686018427387904 elements of f32: the byte size overflows 64 bits");
}

TEST(ConvertApi, OverlappingBuffersAreInvalidArgument) {
  std::vector<std::byte> buffer(64);
  expect_error(
      [&] {
        convert(DType::F16, std::span(buffer).first(16), DType::F32, std::span(buffer).subspan(8),
                8);
      },
      ErrorCode::invalid_argument, "the source and destination buffers of a conversion overlap");
  // Adjacent is fine.
  convert(DType::F16, std::span(buffer).first(16), DType::F32, std::span(buffer).subspan(16), 8);
}

TEST(ConvertApi, LargerBuffersAreAcceptedAndTheRestIsUntouched) {
  const std::vector<std::uint16_t> in{0x3c00, 0x4000, 0xffff};  // the third is not converted
  std::vector<float> out(4, -7.0f);
  convert(DType::F16, std::as_bytes(std::span(in)), DType::F32,
          std::as_writable_bytes(std::span(out)), 2);
  EXPECT_EQ(out, (std::vector<float>{1.0f, 2.0f, -7.0f, -7.0f}));
}

TEST(ConvertApi, ZeroElementsIsANoOp) {
  convert(DType::F16, {}, DType::F32, {}, 0);
  convert(DType::I64, {}, DType::I32, {}, 0);
}

}  // namespace
}  // namespace weightmap
