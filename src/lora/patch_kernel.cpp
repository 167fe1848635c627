#include "lora/patch_kernel.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"

namespace weightmap {

// Out of line, so the class has one home for its vtable.
LoraQuantCodec::~LoraQuantCodec() = default;

namespace lora {
namespace {

bool float_dtype(DType dtype) noexcept {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

// delta[j] = sum_r up[row - row_begin, r] * down[r, col + j], r in order (up holds the
// patch's rows only).
void low_rank_tile(const PreparedPatch& patch, std::uint64_t row, std::uint64_t col, std::size_t n,
                   float* delta) {
  std::fill(delta, delta + n, 0.0f);
  const float* up = patch.up.data() + (row - patch.row_begin) * patch.rank;
  for (std::uint64_t r = 0; r < patch.rank; ++r) {
    const float u = up[r];
    const float* down = patch.down.data() + r * patch.cols + col;
    for (std::size_t j = 0; j < n; ++j) delta[j] += u * down[j];
  }
}

// The delta of elements [element, element + n), which may span rows.
void low_rank_run(const PreparedPatch& patch, std::uint64_t element, std::size_t n, float* delta) {
  for (std::size_t done = 0; done < n;) {
    const std::uint64_t at = element + done;
    const auto m =
        static_cast<std::size_t>(std::min<std::uint64_t>(patch.cols - at % patch.cols, n - done));
    low_rank_tile(patch, at / patch.cols, at % patch.cols, m, delta + done);
    done += m;
  }
}

// `element` counts from the base tensor's start; the diff holds the patch's rows only.
void diff_tile(const PreparedPatch& patch, std::uint64_t element, std::size_t n, float* delta,
               std::vector<std::byte>& raw) {
  const std::uint64_t size = *dtype_bytes_for(patch.diff->dtype, 1);
  raw.resize(n * size);
  const std::uint64_t in_diff = element - patch.row_begin * patch.cols;
  patch.diff_reader->read_at(patch.diff->offset + in_diff * size, raw);
  convert(patch.diff->dtype, raw, DType::F32, std::as_writable_bytes(std::span(delta, n)), n);
}

void to_f32(const TensorCodec& codec, std::span<const std::byte> bytes, std::span<float> out) {
  if (codec.quantized != nullptr) {
    codec.quantized->to_f32(codec.dtype, bytes, out);
  } else {
    convert(codec.dtype, bytes, DType::F32, std::as_writable_bytes(out), out.size());
  }
}

void from_f32(const TensorCodec& codec, std::span<const float> values, std::span<std::byte> out) {
  if (codec.quantized != nullptr) {
    codec.quantized->from_f32(codec.dtype, codec.unit_elements, values, out);
  } else {
    convert(DType::F32, std::as_bytes(values), codec.dtype, out, values.size());
  }
}

}  // namespace

TensorCodec tensor_codec(DType dtype, std::span<const std::uint64_t> shape,
                         const LoraQuantCodec* quantized, std::string_view tensor,
                         const std::string& file) {
  if (float_dtype(dtype)) return {dtype, nullptr, 1, *dtype_bytes_for(dtype, 1)};
  const std::string name = printable(tensor);
  const DTypeInfo& info = dtype_info(dtype);
  if (info.block_size <= 1) {
    throw Error(ErrorCode::unsupported,
                fmt::format("base tensor {} has type {}; LoRAs patch f32, f16 and bf16 tensors "
                            "(quantized ones with a codec)",
                            name, dtype_name(dtype)),
                {file});
  }
  if (quantized == nullptr) {
    throw Error(ErrorCode::unsupported,
                fmt::format("quantized base tensor {} needs the ggml adapter", name), {file});
  }
  const std::uint64_t row = shape.empty() ? 1 : shape.back();
  const auto row_bytes = dtype_bytes_for(dtype, row);
  if (!row_bytes) {
    throw Error(ErrorCode::unsupported,
                fmt::format("quantized base tensor {} has rows of {} elements, which are not "
                            "whole blocks of {} ({} elements); it cannot be requantized row by row",
                            name, row, dtype_name(dtype), info.block_size),
                {file});
  }
  try {
    quantized->check(dtype);
  } catch (Error& error) {
    error.add_context({file, name, std::nullopt});
    throw;
  }
  // An empty tensor: nothing to patch, and no zero-sized unit to divide by.
  if (row == 0) return {dtype, quantized, 1, 0};
  return {dtype, quantized, row, *row_bytes};
}

void check_whole_units(const TensorCodec& codec, const LoraTarget& target,
                       const std::string& file) {
  const std::uint64_t unit = codec.unit_elements;
  if ((target.row_begin * target.cols) % unit == 0 &&
      (target.row_count * target.cols) % unit == 0) {
    return;
  }
  throw Error(ErrorCode::unsupported,
              fmt::format("rows [{}, {}) of quantized base tensor {} cut its rows of {} elements; "
                          "they cannot be requantized alone",
                          target.row_begin, target.row_begin + target.row_count,
                          printable(target.base_tensor), unit),
              {file});
}

std::size_t tile_elements_for(const TensorCodec& codec, std::size_t tile_elements) {
  const auto unit = static_cast<std::size_t>(codec.unit_elements);
  return std::max<std::size_t>(tile_elements / unit, 1) * unit;
}

void reserve_scratch(TileScratch& scratch, std::size_t tile,
                     std::span<const PreparedPatch* const> patches) {
  if (scratch.weights.size() < tile) scratch.weights.resize(tile);
  if (scratch.delta.size() < tile) scratch.delta.resize(tile);
  for (const PreparedPatch* patch : patches) {
    if (patch->diff == nullptr) continue;
    const std::size_t raw =
        tile * static_cast<std::size_t>(*dtype_bytes_for(patch->diff->dtype, 1));
    if (scratch.raw.capacity() < raw) scratch.raw.reserve(raw);
  }
}

void add_patches(const TensorCodec& codec, std::span<std::byte> bytes, std::uint64_t first,
                 std::uint64_t count, std::span<const PreparedPatch* const> patches,
                 std::size_t tile_elements, TileScratch& scratch) {
  if (count == 0 || patches.empty()) return;
  const std::size_t tile = tile_elements_for(codec, tile_elements);
  reserve_scratch(scratch, tile, patches);
  for (const PreparedPatch* patch : patches) {
    // Only the patch's rows: elements outside them are neither read nor written (a slice of a
    // fused tensor leaves its other rows, and their pages, as they are). Row edges are whole
    // units (see check_whole_units).
    const std::uint64_t begin = std::max(first, patch->row_begin * patch->cols);
    const std::uint64_t end =
        std::min(first + count, (patch->row_begin + patch->row_count) * patch->cols);
    for (std::uint64_t element = begin; element < end;) {
      // Whole units: first, count and the patch's rows are, and so is the tile.
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(tile, end - element));
      const auto tile_bytes =
          bytes.subspan(static_cast<std::size_t>(codec.bytes_of(element - first)),
                        static_cast<std::size_t>(codec.bytes_of(n)));
      const auto weights = std::span(scratch.weights).first(n);
      float* delta = scratch.delta.data();
      to_f32(codec, tile_bytes, weights);
      if (patch->rank == 0) {
        diff_tile(*patch, element, n, delta, scratch.raw);
      } else {
        low_rank_run(*patch, element, n, delta);
      }
      const float scale = patch->scale;
      for (std::size_t j = 0; j < n; ++j) weights[j] += scale * delta[j];
      from_f32(codec, weights, tile_bytes);
      element += n;
    }
  }
}

}  // namespace lora
}  // namespace weightmap
