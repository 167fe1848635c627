// convert(): argument checks, the pair -> kernel mapping, and the one-time choice of
// implementation. The kernels themselves live in convert_scalar.cpp and convert_avx2.cpp.
#include "weightmap/convert.hpp"

#include <fmt/format.h>

#include <cstring>

#include "dtype/convert_impl.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace detail {
namespace {

bool is_known(DType type) noexcept { return dtype_bytes_for(type, 0).has_value(); }

ConvertKernel find_kernel(const ConvertKernels& kernels, DType from, DType to) noexcept {
  if (to == DType::F32) {
    switch (from) {
      case DType::F16: return kernels.f16_to_f32;
      case DType::BF16: return kernels.bf16_to_f32;
      case DType::F8_E4M3: return kernels.f8_e4m3_to_f32;
      case DType::F8_E5M2: return kernels.f8_e5m2_to_f32;
      case DType::F64: return kernels.f64_to_f32;
      default: return nullptr;
    }
  }
  if (from == DType::F32 && to == DType::F16) return kernels.f32_to_f16;
  if (from == DType::F32 && to == DType::BF16) return kernels.f32_to_bf16;
  if (from == DType::F16 && to == DType::BF16) return kernels.f16_to_bf16;
  if (from == DType::BF16 && to == DType::F16) return kernels.bf16_to_f16;
  return nullptr;
}

bool is_supported(DType from, DType to) noexcept {
  if (from == to) return is_known(from);
  if (from == DType::I64 && to == DType::I32) return true;
  return find_kernel(scalar_kernels(), from, to) != nullptr;
}

// Names a type for a message even when the caller passed an id outside the table.
std::string type_name(DType type) {
  if (is_known(type)) return std::string(dtype_name(type));
  return fmt::format("type id {}", static_cast<std::uint32_t>(type));
}

// Bytes `elements` elements of `type` take, or an invalid_argument error saying why not.
std::uint64_t bytes_needed(DType type, std::uint64_t elements) {
  if (auto bytes = dtype_bytes_for(type, elements)) return *bytes;
  const auto& info = dtype_info(type);
  if (elements % info.block_size != 0) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("cannot convert {} elements of {}: not a whole number of {}-element "
                            "blocks",
                            elements, info.name, info.block_size));
  }
  throw Error(ErrorCode::invalid_argument,
              fmt::format("cannot convert {} elements of {}: the byte size overflows 64 bits",
                          elements, info.name));
}

void check_buffer(std::string_view which, std::size_t size, DType type, std::uint64_t elements,
                  std::uint64_t needed) {
  if (size >= needed) return;
  throw Error(ErrorCode::invalid_argument,
              fmt::format("the {} buffer holds {} bytes but {} elements of {} take {} bytes", which,
                          size, elements, dtype_name(type), needed));
}

}  // namespace

void convert_with(const ConvertKernels& kernels, DType from, std::span<const std::byte> src,
                  DType to, std::span<std::byte> dst, std::uint64_t elements) {
  if (!is_supported(from, to)) {
    throw Error(ErrorCode::unsupported, fmt::format("converting {} to {} is not supported",
                                                    type_name(from), type_name(to)));
  }
  const std::uint64_t src_bytes = bytes_needed(from, elements);
  const std::uint64_t dst_bytes = bytes_needed(to, elements);
  check_buffer("source", src.size(), from, elements, src_bytes);
  check_buffer("destination", dst.size(), to, elements, dst_bytes);
  if (elements == 0) return;
  // Both sizes fit in a span, so they fit in size_t and in the address space from here on.
  const auto src_begin = reinterpret_cast<std::uintptr_t>(src.data());
  const auto dst_begin = reinterpret_cast<std::uintptr_t>(dst.data());
  if (src_begin < dst_begin + dst_bytes && dst_begin < src_begin + src_bytes) {
    throw Error(ErrorCode::invalid_argument,
                "the source and destination buffers of a conversion overlap");
  }
  const auto n = static_cast<std::size_t>(elements);

  if (from == to) {
    std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(src_bytes));
    return;
  }
  if (from == DType::I64 && to == DType::I32) {
    const std::size_t bad = kernels.i64_to_i32(src.data(), dst.data(), n);
    if (bad == n) return;
    std::int64_t value = 0;
    std::memcpy(&value, src.data() + 8 * bad, sizeof value);
    throw Error(ErrorCode::malformed,
                fmt::format("i64 element {} is {}, which does not fit in i32 (range {} to {})", bad,
                            value, INT32_MIN, INT32_MAX));
  }
  find_kernel(kernels, from, to)(src.data(), dst.data(), n);
}

const ConvertKernels& active_kernels() noexcept {
  static const ConvertKernels& kernels = [&]() -> const ConvertKernels& {
    if (const auto* avx2 = avx2_kernels()) return *avx2;
    return scalar_kernels();
  }();
  return kernels;
}

}  // namespace detail

bool can_convert(DType from, DType to) noexcept { return detail::is_supported(from, to); }

void convert(DType from, std::span<const std::byte> src, DType to, std::span<std::byte> dst,
             std::uint64_t elements) {
  detail::convert_with(detail::active_kernels(), from, src, to, dst, elements);
}

std::string_view convert_implementation() noexcept { return detail::active_kernels().name; }

}  // namespace weightmap
