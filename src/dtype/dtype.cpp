#include "weightmap/dtype.hpp"

#include <fmt/format.h>

#include <array>

#include "checked_math.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

// ggml's super-block size for k-quants and i-quants.
constexpr std::uint32_t kQK = 256;

// Block sizes and bytes per block are ggml's (ggml-common.h) and the safetensors spec's. The
// last column, the natural alignment, is alignof of ggml's block struct (its widest member) or
// of the element's C type; c64 is two f32.
constexpr std::array kTable = {
    DTypeInfo{DType::F32, "f32", 1, 4, "F32", true, 4},
    DTypeInfo{DType::F16, "f16", 1, 2, "F16", true, 2},
    DTypeInfo{DType::Q4_0, "q4_0", 32, 2 + 16, "", true, 2},
    DTypeInfo{DType::Q4_1, "q4_1", 32, 2 + 2 + 16, "", true, 4},
    DTypeInfo{DType::Q5_0, "q5_0", 32, 2 + 4 + 16, "", true, 2},
    DTypeInfo{DType::Q5_1, "q5_1", 32, 2 + 2 + 4 + 16, "", true, 4},
    DTypeInfo{DType::Q8_0, "q8_0", 32, 2 + 32, "", true, 2},
    DTypeInfo{DType::Q8_1, "q8_1", 32, 2 + 2 + 32, "", true, 4},  // f16 d and s, 32 quants
    DTypeInfo{DType::Q2_K, "q2_K", kQK, 2 + 2 + kQK / 16 + kQK / 4, "", true, 4},
    DTypeInfo{DType::Q3_K, "q3_K", kQK, 2 + kQK / 4 + kQK / 8 + 12, "", true, 2},
    DTypeInfo{DType::Q4_K, "q4_K", kQK, 2 + 2 + kQK / 2 + 12, "", true, 4},
    DTypeInfo{DType::Q5_K, "q5_K", kQK, 2 + 2 + kQK / 2 + kQK / 8 + 12, "", true, 4},
    DTypeInfo{DType::Q6_K, "q6_K", kQK, 2 + kQK / 2 + kQK / 4 + kQK / 16, "", true, 2},
    DTypeInfo{DType::Q8_K, "q8_K", kQK, 4 + kQK + kQK / 8, "", true, 4},
    DTypeInfo{DType::IQ2_XXS, "iq2_xxs", kQK, 2 + kQK / 4, "", true, 2},
    DTypeInfo{DType::IQ2_XS, "iq2_xs", kQK, 2 + kQK / 4 + kQK / 32, "", true, 2},
    DTypeInfo{DType::IQ3_XXS, "iq3_xxs", kQK, 2 + kQK / 4 + kQK / 8, "", true, 2},
    DTypeInfo{DType::IQ1_S, "iq1_s", kQK, 2 + kQK / 8 + kQK / 16, "", true, 2},
    DTypeInfo{DType::IQ4_NL, "iq4_nl", 32, 2 + 16, "", true, 2},
    DTypeInfo{DType::IQ3_S, "iq3_s", kQK, 2 + kQK / 4 + kQK / 8 + kQK / 32 + 4, "", true, 2},
    DTypeInfo{DType::IQ2_S, "iq2_s", kQK, 2 + kQK / 4 + kQK / 16, "", true, 2},
    DTypeInfo{DType::IQ4_XS, "iq4_xs", kQK, 2 + 2 + kQK / 2 + kQK / 64, "", true, 2},
    DTypeInfo{DType::I8, "i8", 1, 1, "I8", true, 1},
    DTypeInfo{DType::I16, "i16", 1, 2, "I16", true, 2},
    DTypeInfo{DType::I32, "i32", 1, 4, "I32", true, 4},
    DTypeInfo{DType::I64, "i64", 1, 8, "I64", true, 8},
    DTypeInfo{DType::F64, "f64", 1, 8, "F64", true, 8},
    DTypeInfo{DType::IQ1_M, "iq1_m", kQK, kQK / 8 + kQK / 16 + kQK / 32, "", true, 1},
    DTypeInfo{DType::BF16, "bf16", 1, 2, "BF16", true, 2},
    DTypeInfo{DType::TQ1_0, "tq1_0", kQK, 2 + 4 * 13, "", true, 2},
    DTypeInfo{DType::TQ2_0, "tq2_0", kQK, 2 + 64, "", true, 2},
    DTypeInfo{DType::MXFP4, "mxfp4", 32, 1 + 16, "", true, 1},
    DTypeInfo{DType::NVFP4, "nvfp4", 64, 4 + 32, "", true, 1},
    DTypeInfo{DType::Q1_0, "q1_0", 128, 2 + 16, "", true, 2},
    DTypeInfo{DType::Q2_0, "q2_0", 64, 2 + 16, "", true, 2},
    DTypeInfo{DType::BOOL, "bool", 1, 1, "BOOL", false, 1},
    DTypeInfo{DType::U8, "u8", 1, 1, "U8", false, 1},
    DTypeInfo{DType::U16, "u16", 1, 2, "U16", false, 2},
    DTypeInfo{DType::U32, "u32", 1, 4, "U32", false, 4},
    DTypeInfo{DType::U64, "u64", 1, 8, "U64", false, 8},
    DTypeInfo{DType::F8_E4M3, "f8_e4m3", 1, 1, "F8_E4M3", false, 1},
    DTypeInfo{DType::F8_E5M2, "f8_e5m2", 1, 1, "F8_E5M2", false, 1},
    DTypeInfo{DType::F8_E8M0, "f8_e8m0", 1, 1, "F8_E8M0", false, 1},
    // Sub-byte safetensors types: a tensor must hold a whole number of bytes, which the
    // block form expresses (4 six-bit values in 3 bytes, 2 four-bit values in 1 byte).
    DTypeInfo{DType::F6_E2M3, "f6_e2m3", 4, 3, "F6_E2M3", false, 1},
    DTypeInfo{DType::F6_E3M2, "f6_e3m2", 4, 3, "F6_E3M2", false, 1},
    DTypeInfo{DType::F4, "f4", 2, 1, "F4", false, 1},
    DTypeInfo{DType::C64, "c64", 1, 8, "C64", false, 4},
};

// Ids are dense in two ranges (ggml's from 0, ours from 1000), so a lookup is an index into
// a table built once: it runs for every tensor of every file opened.
constexpr std::uint32_t kGgmlIds = 64;
constexpr std::uint32_t kOwnFirstId = 1000;
constexpr std::uint32_t kOwnIds = 64;

constexpr auto kById = [] {
  std::array<const DTypeInfo*, kGgmlIds + kOwnIds> slots{};
  for (const auto& info : kTable) {
    const auto id = static_cast<std::uint32_t>(info.id);
    slots[id < kOwnFirstId ? id : kGgmlIds + (id - kOwnFirstId)] = &info;
  }
  return slots;
}();

const DTypeInfo* lookup(DType type) noexcept {
  const auto id = static_cast<std::uint32_t>(type);
  if (id < kGgmlIds) return kById[id];
  if (id >= kOwnFirstId && id - kOwnFirstId < kOwnIds) return kById[kGgmlIds + (id - kOwnFirstId)];
  return nullptr;
}

}  // namespace

std::span<const DTypeInfo> all_dtypes() noexcept { return kTable; }

const DTypeInfo& dtype_info(DType type) {
  if (const auto* info = lookup(type)) return *info;
  throw Error(ErrorCode::unknown_dtype,
              fmt::format("unknown tensor type id {}", static_cast<std::uint32_t>(type)));
}

std::optional<DType> find_dtype_by_ggml_id(std::uint32_t id) noexcept {
  const auto* info = lookup(static_cast<DType>(id));
  if (info == nullptr || !info->in_ggml) return std::nullopt;
  return info->id;
}

std::optional<DType> find_dtype_by_safetensors_name(std::string_view name) noexcept {
  if (name.empty()) return std::nullopt;
  for (const auto& info : kTable) {
    if (info.safetensors_name == name) return info.id;
  }
  return std::nullopt;
}

DType dtype_from_ggml_id(std::uint32_t id) {
  if (auto type = find_dtype_by_ggml_id(id)) return *type;
  throw Error(ErrorCode::unknown_dtype, fmt::format("unknown ggml tensor type id {}", id));
}

DType dtype_from_safetensors_name(std::string_view name) {
  if (auto type = find_dtype_by_safetensors_name(name)) return *type;
  throw Error(ErrorCode::unknown_dtype,
              fmt::format("unknown safetensors dtype \"{}\"", printable(name)));
}

DType dtype_from_name(std::string_view name) {
  for (const auto& info : kTable) {
    if (info.name == name) return info.id;
  }
  throw Error(ErrorCode::unknown_dtype, fmt::format("unknown tensor type \"{}\"", printable(name)));
}

std::string_view dtype_name(DType type) { return dtype_info(type).name; }

std::optional<std::uint64_t> dtype_bytes_for(DType type, std::uint64_t elements) noexcept {
  const auto* info = lookup(type);
  if (info == nullptr || elements % info->block_size != 0) return std::nullopt;
  return checked_mul(elements / info->block_size, info->block_bytes);
}

}  // namespace weightmap
