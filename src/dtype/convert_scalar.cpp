// The portable reference conversions: integer bit manipulation only, so the result does not
// depend on the FPU's rounding mode or flush-to-zero settings. The vector kernels must match
// these bit for bit, NaNs included: a NaN is made quiet (as F16C and SSE do) and keeps its
// sign and leading payload bits.
#include <array>
#include <bit>
#include <cstring>
#include <limits>

#include "dtype/convert_impl.hpp"

namespace weightmap::detail {

static_assert(std::numeric_limits<float>::is_iec559 && std::numeric_limits<double>::is_iec559,
              "conversions assume IEEE 754 binary32/binary64");

std::uint32_t f16_bits_to_f32_bits(std::uint16_t h) noexcept {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {
    if (mantissa == 0) return sign | 0x7f800000u;  // infinity
    return sign | 0x7fc00000u | (mantissa << 13);  // NaN, made quiet
  }
  if (exponent == 0) {
    if (mantissa == 0) return sign;  // zero
    // Subnormal: mantissa * 2^-24. Shift the leading 1 into the implicit bit's place.
    const int shift = 11 - std::bit_width(mantissa);  // 1..10
    mantissa = (mantissa << shift) & 0x3ffu;
    const auto f32_exponent = static_cast<std::uint32_t>(127 - 14 - shift);
    return sign | (f32_exponent << 23) | (mantissa << 13);
  }
  return sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
}

namespace {

// value >> shift, rounded to nearest with ties to even. shift is 1..31.
std::uint32_t shift_right_rounding_to_even(std::uint32_t value, unsigned shift) noexcept {
  const std::uint32_t kept = value >> shift;
  const std::uint32_t rest = value & ((1u << shift) - 1);
  const std::uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1u) != 0)) ? 1u : 0u);
}

}  // namespace

std::uint16_t f32_bits_to_f16_bits(std::uint32_t f) noexcept {
  const auto sign = static_cast<std::uint16_t>((f >> 16) & 0x8000u);
  const std::uint32_t magnitude = f & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: quiet, keep the top 9 payload bits
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  // 65520 = 0x477ff000 is halfway between 65504 (the largest f16) and 65536: it and
  // everything above round to infinity.
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  const std::uint32_t exponent = magnitude >> 23;
  if (exponent < 127 - 14) {
    // The result is subnormal (or zero): the value in units of 2^-24 is
    // (1.mantissa * 2^23) >> (126 - exponent). Beyond 24 bits of shift it rounds to 0.
    const unsigned shift = 126 - exponent;
    if (shift > 24) return sign;
    const std::uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    // A carry out of the mantissa lands on the smallest normal's encoding, as it should.
    return static_cast<std::uint16_t>(sign | shift_right_rounding_to_even(significand, shift));
  }
  // Normal: rebias the exponent, round 23 mantissa bits to 10. A carry out of the mantissa
  // increments the exponent, which is the right answer (and 65504 + carry cannot happen: the
  // overflow test above caught it).
  const std::uint32_t rebiased = magnitude - ((127u - 15u) << 23);
  return static_cast<std::uint16_t>(sign | shift_right_rounding_to_even(rebiased, 13));
}

std::uint16_t f32_bits_to_bf16_bits(std::uint32_t f) noexcept {
  // NaN: rounding could carry a payload-only NaN into infinity, so keep the top bits and set
  // the quiet bit instead.
  if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x40u);
  // Ties to even: add just under half, plus one when the kept part is odd. Overflow of the
  // largest finite values carries into the exponent and gives infinity, as RNE should.
  const std::uint32_t odd = (f >> 16) & 1u;
  return static_cast<std::uint16_t>((f + 0x7fffu + odd) >> 16);
}

namespace {

template <typename T>
T load(const std::byte* p) noexcept {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <typename T>
void store(std::byte* p, T value) noexcept {
  std::memcpy(p, &value, sizeof(T));
}

// f8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN, subnormals are m * 2^-9.
constexpr std::uint32_t f8_e4m3_bits_to_f32_bits(std::uint8_t b) noexcept {
  const std::uint32_t sign = std::uint32_t{b & 0x80u} << 24;
  const std::uint32_t exponent = (b >> 3) & 0xfu;
  std::uint32_t mantissa = b & 0x7u;
  if (exponent == 0xf && mantissa == 0x7) return sign | 0x7fc00000u;
  if (exponent == 0) {
    if (mantissa == 0) return sign;
    int shift = 0;  // normalise: mantissa * 2^-9 = 1.xxx * 2^(-6 - shift)
    while ((mantissa & 0x8u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    return sign | (static_cast<std::uint32_t>(127 - 6 - shift) << 23) | ((mantissa & 0x7u) << 20);
  }
  return sign | ((exponent + (127 - 7)) << 23) | (mantissa << 20);
}

// f8 e5m2 is the upper byte of an f16: same exponent, two mantissa bits.
std::uint32_t f8_e5m2_bits_to_f32_bits(std::uint8_t b) noexcept {
  return f16_bits_to_f32_bits(static_cast<std::uint16_t>(b << 8));
}

// 256 entries: a lookup is faster than decoding, and exact by construction.
constexpr std::array<std::uint32_t, 256> kF8E4M3ToF32 = [] {
  std::array<std::uint32_t, 256> table{};
  for (unsigned b = 0; b < 256; ++b)
    table[b] = f8_e4m3_bits_to_f32_bits(static_cast<std::uint8_t>(b));
  return table;
}();

const std::array<std::uint32_t, 256>& f8_e5m2_table() noexcept {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (unsigned b = 0; b < 256; ++b)
      t[b] = f8_e5m2_bits_to_f32_bits(static_cast<std::uint8_t>(b));
    return t;
  }();
  return table;
}

void f16_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    store(dst + 4 * i, f16_bits_to_f32_bits(load<std::uint16_t>(src + 2 * i)));
  }
}

void bf16_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    // bf16 is the upper half of an f32: exact, NaNs included, so nothing to quiet.
    store(dst + 4 * i, std::uint32_t{load<std::uint16_t>(src + 2 * i)} << 16);
  }
}

void f8_e4m3_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    store(dst + 4 * i, kF8E4M3ToF32[std::to_integer<std::uint8_t>(src[i])]);
}

void f8_e5m2_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  const auto& table = f8_e5m2_table();
  for (std::size_t i = 0; i < n; ++i)
    store(dst + 4 * i, table[std::to_integer<std::uint8_t>(src[i])]);
}

void f64_to_f32(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    // IEEE 754 (asserted above) defines this for every input: round to nearest even in the
    // default mode, infinity beyond the range, NaN stays NaN (quiet). The one conversion that
    // uses the FPU: a caller that set flush-to-zero gets 0 for subnormal results here (and
    // in the vector kernel alike).
    store(dst + 4 * i, static_cast<float>(load<double>(src + 8 * i)));
  }
}

void f32_to_f16(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    store(dst + 2 * i, f32_bits_to_f16_bits(load<std::uint32_t>(src + 4 * i)));
  }
}

void f32_to_bf16(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    store(dst + 2 * i, f32_bits_to_bf16_bits(load<std::uint32_t>(src + 4 * i)));
  }
}

// Through f32: widening is exact, so there is a single rounding.
void f16_to_bf16(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    store(dst + 2 * i,
          f32_bits_to_bf16_bits(f16_bits_to_f32_bits(load<std::uint16_t>(src + 2 * i))));
  }
}

void bf16_to_f16(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t f32 = std::uint32_t{load<std::uint16_t>(src + 2 * i)} << 16;
    store(dst + 2 * i, f32_bits_to_f16_bits(f32));
  }
}

std::size_t i64_to_i32(const std::byte* src, std::byte* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const auto value = load<std::int64_t>(src + 8 * i);
    if (value < std::numeric_limits<std::int32_t>::min() ||
        value > std::numeric_limits<std::int32_t>::max()) {
      return i;
    }
    store(dst + 4 * i, static_cast<std::int32_t>(value));
  }
  return n;
}

}  // namespace

const ConvertKernels& scalar_kernels() noexcept {
  static constexpr ConvertKernels kernels{
      .name = "scalar",
      .f16_to_f32 = f16_to_f32,
      .bf16_to_f32 = bf16_to_f32,
      .f8_e4m3_to_f32 = f8_e4m3_to_f32,
      .f8_e5m2_to_f32 = f8_e5m2_to_f32,
      .f64_to_f32 = f64_to_f32,
      .f32_to_f16 = f32_to_f16,
      .f32_to_bf16 = f32_to_bf16,
      .f16_to_bf16 = f16_to_bf16,
      .bf16_to_f16 = bf16_to_f16,
      .i64_to_i32 = i64_to_i32,
  };
  return kernels;
}

}  // namespace weightmap::detail
