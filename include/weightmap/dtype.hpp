// Element and block types. Ids below 1000 equal ggml's `enum ggml_type`, so a GGUF tensor
// type maps 1:1; safetensors types that ggml lacks (unsigned ints, bool, fp8, fp6, fp4,
// complex) get ids from 1000 on.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class DType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
  Q2_0 = 42,
  // Not in ggml: safetensors-only types.
  BOOL = 1000,
  U8 = 1001,
  U16 = 1002,
  U32 = 1003,
  U64 = 1004,
  F8_E4M3 = 1005,
  F8_E5M2 = 1006,
  F8_E8M0 = 1007,
  F6_E2M3 = 1008,
  F6_E3M2 = 1009,
  F4 = 1010,
  C64 = 1011,
};

struct DTypeInfo {
  DType id;
  std::string_view name;              // as ggml spells it ("f32", "q4_K"); lower case otherwise
  std::uint32_t block_size;           // elements per block (1 for plain types)
  std::uint32_t block_bytes;          // bytes per block
  std::string_view safetensors_name;  // "F32", "BF16", ...; empty where safetensors has none
  bool in_ggml;                       // a ggml_type with this id exists
  // Natural alignment in bytes: the alignment of the C type of one element, or of ggml's block
  // struct (its largest member: 2 for a ggml_half scale, 4 where two halves form a ggml_half2,
  // 4 for q8_K's float). A tensor at a multiple of it has every element or block aligned, which
  // is all ggml's CPU kernels need (tests/ggml/cpu_weight_alignment_test.cpp).
  std::uint32_t alignment;
};

// Every known type, in id order.
std::span<const DTypeInfo> all_dtypes() noexcept;

// Throws Error(unknown_dtype) naming the value.
const DTypeInfo& dtype_info(DType type);
DType dtype_from_ggml_id(std::uint32_t id);
DType dtype_from_safetensors_name(std::string_view name);
DType dtype_from_name(std::string_view ggml_style_name);

std::optional<DType> find_dtype_by_ggml_id(std::uint32_t id) noexcept;
std::optional<DType> find_dtype_by_safetensors_name(std::string_view name) noexcept;

std::string_view dtype_name(DType type);

// Bytes of `elements` elements of `type`, or nullopt when elements is not a whole number of
// blocks or the byte count overflows 64 bits.
std::optional<std::uint64_t> dtype_bytes_for(DType type, std::uint64_t elements) noexcept;

}  // namespace weightmap
WEIGHTMAP_API_END
