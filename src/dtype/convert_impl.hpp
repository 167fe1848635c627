// The conversion kernels behind weightmap::convert(), one table per implementation. Private:
// tests use it to run the scalar reference and the vectorised kernels side by side on the
// same CPU, whatever the dispatcher would pick.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "weightmap/dtype.hpp"

namespace weightmap::detail {

// Converts n elements; src and dst need no alignment and must not overlap.
using ConvertKernel = void (*)(const std::byte* src, std::byte* dst, std::size_t n);
// As ConvertKernel, but stops at the first element that does not fit: returns its index,
// or n when every element was converted.
using CheckedConvertKernel = std::size_t (*)(const std::byte* src, std::byte* dst, std::size_t n);

struct ConvertKernels {
  std::string_view name;
  ConvertKernel f16_to_f32;
  ConvertKernel bf16_to_f32;
  ConvertKernel f8_e4m3_to_f32;
  ConvertKernel f8_e5m2_to_f32;
  ConvertKernel f64_to_f32;
  ConvertKernel f32_to_f16;
  ConvertKernel f32_to_bf16;
  ConvertKernel f16_to_bf16;
  ConvertKernel bf16_to_f16;
  CheckedConvertKernel i64_to_i32;
};

// The portable reference. Every other implementation must match it bit for bit.
const ConvertKernels& scalar_kernels() noexcept;

// The AVX2+F16C kernels, or nullptr when this CPU (or this build's target) lacks them.
const ConvertKernels* avx2_kernels() noexcept;

// What convert() uses: the fastest table this CPU runs, chosen once.
const ConvertKernels& active_kernels() noexcept;

// convert() with an explicit kernel table: the same checks and errors.
void convert_with(const ConvertKernels& kernels, DType from, std::span<const std::byte> src,
                  DType to, std::span<std::byte> dst, std::uint64_t elements);

// Scalar element conversions, shared by the scalar kernels and the vector kernels' tails
// where a tail goes element by element.
std::uint32_t f16_bits_to_f32_bits(std::uint16_t h) noexcept;
std::uint16_t f32_bits_to_f16_bits(std::uint32_t f) noexcept;
std::uint16_t f32_bits_to_bf16_bits(std::uint32_t f) noexcept;

}  // namespace weightmap::detail
