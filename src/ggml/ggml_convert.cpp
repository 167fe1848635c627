#include "ggml/ggml_convert.hpp"

#include <fmt/format.h>
#include <ggml-backend.h>

#include <algorithm>
#include <vector>

#include "weightmap/convert.hpp"
#include "weightmap/ggml.hpp"

namespace weightmap::ggml::detail {
namespace {

// f32 staging per chunk: small enough to stay in cache-friendly sizes, large enough that the
// per-call overhead of the quantizers does not show.
constexpr std::size_t kChunkFloats = std::size_t{1} << 18;

// The types ggml_quantize_chunk has a quantizer for (it asserts on any other).
bool ggml_quantizes_into(DType to) noexcept {
  switch (to) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q1_0:
    case DType::Q2_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::MXFP4:
    case DType::NVFP4:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::TQ1_0:
    case DType::TQ2_0:
    case DType::IQ2_XXS:
    case DType::IQ2_XS:
    case DType::IQ3_XXS:
    case DType::IQ3_S:
    case DType::IQ2_S:
    case DType::IQ1_S:
    case DType::IQ1_M:
    case DType::IQ4_NL:
    case DType::IQ4_XS: return !ggml_quantize_requires_imatrix(static_cast<ggml_type>(to));
    default: return false;
  }
}

bool reads_as_f32(DType from) noexcept {
  if (can_convert(from, DType::F32)) return true;
  const auto id = static_cast<std::uint32_t>(from);
  if (id >= GGML_TYPE_COUNT) return false;
  return ggml_get_type_traits(static_cast<ggml_type>(id))->to_float != nullptr;
}

void to_f32(DType from, std::span<const std::byte> src, std::span<float> out) {
  const auto elements = static_cast<std::uint64_t>(out.size());
  if (can_convert(from, DType::F32)) {
    convert(from, src, DType::F32, std::as_writable_bytes(out), elements);
    return;
  }
  ggml_get_type_traits(static_cast<ggml_type>(from))
      ->to_float(src.data(), out.data(), static_cast<std::int64_t>(elements));
}

}  // namespace

bool ggml_can_convert(DType from, DType to) noexcept {
  return from != to && ggml_quantizes_into(to) && reads_as_f32(from);
}

void convert_with_ggml(DType from, std::span<const std::byte> src, ggml_tensor& dst,
                       const ErrorContext& where) {
  const DType to = dtype_of(dst.type);
  const auto per_row = static_cast<std::uint64_t>(dst.ne[0]);
  const auto rows = static_cast<std::uint64_t>(ggml_nrows(&dst));
  const auto src_row_bytes = dtype_bytes_for(from, per_row);
  const auto dst_row_bytes = dtype_bytes_for(to, per_row);
  if (!src_row_bytes || !dst_row_bytes) {
    throw Error(ErrorCode::unsupported,
                fmt::format("rows of {} elements are not whole blocks of {} and {}", per_row,
                            dtype_name(from), dtype_name(to)),
                where);
  }
  if (src.size() != *src_row_bytes * rows) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("the file holds {} bytes of {} but {} rows of {} need {}", src.size(),
                            dtype_name(from), rows, per_row, *src_row_bytes * rows),
                where);
  }

  const std::uint64_t chunk_rows =
      std::max<std::uint64_t>(1, kChunkFloats / std::max<std::uint64_t>(per_row, 1));
  std::vector<float> floats(static_cast<std::size_t>(std::min(chunk_rows, rows) * per_row));
  const bool host = ggml_backend_buffer_is_host(dst.buffer);
  std::vector<std::byte> staging(
      host ? 0 : static_cast<std::size_t>(std::min(chunk_rows, rows) * *dst_row_bytes));

  for (std::uint64_t row = 0; row < rows; row += chunk_rows) {
    const std::uint64_t n = std::min(chunk_rows, rows - row);
    const auto in = src.subspan(static_cast<std::size_t>(row * *src_row_bytes),
                                static_cast<std::size_t>(n * *src_row_bytes));
    const auto f32 = std::span<float>(floats).first(static_cast<std::size_t>(n * per_row));
    to_f32(from, in, f32);
    const std::size_t out_offset = static_cast<std::size_t>(row * *dst_row_bytes);
    const std::size_t out_bytes = static_cast<std::size_t>(n * *dst_row_bytes);
    void* out = host ? static_cast<void*>(static_cast<char*>(dst.data) + out_offset)
                     : static_cast<void*>(staging.data());
    ggml_quantize_chunk(dst.type, f32.data(), out, 0, static_cast<std::int64_t>(n),
                        static_cast<std::int64_t>(per_row), nullptr);
    if (!host) ggml_backend_tensor_set(&dst, staging.data(), out_offset, out_bytes);
  }
}

}  // namespace weightmap::ggml::detail
