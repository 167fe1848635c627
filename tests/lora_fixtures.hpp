// Fixtures of the LoRA tests: model and LoRA files written from float values (through the
// library's streaming writers), and the reference merge every test compares against,
// computed in a plain loop here, independently of the library's tiles and threads.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "weightmap/convert.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::lora_test {

struct FloatTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;
  std::vector<float> values;  // element_count values, rounded to dtype when written
};

inline std::uint64_t elements_of(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (const auto dim : shape) n *= dim;
  return n;
}

// Values in [-scale, scale), deterministic per seed.
inline std::vector<float> random_values(std::uint64_t count, std::uint32_t seed, float scale) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<float> out(static_cast<std::size_t>(count));
  for (auto& value : out) value = uniform(random);
  return out;
}

inline FloatTensor random_tensor(std::string name, DType dtype, std::vector<std::uint64_t> shape,
                                 std::uint32_t seed, float scale = 1.0f) {
  FloatTensor tensor{std::move(name), dtype, std::move(shape), {}};
  tensor.values = random_values(elements_of(tensor.shape), seed, scale);
  return tensor;
}

inline std::vector<std::byte> stored_bytes(const FloatTensor& tensor) {
  const std::uint64_t n = elements_of(tensor.shape);
  std::vector<std::byte> out(static_cast<std::size_t>(*dtype_bytes_for(tensor.dtype, n)));
  if (tensor.dtype == DType::U8) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] = static_cast<std::byte>(static_cast<int>(tensor.values[i]) & 0xff);
    }
    return out;
  }
  if (dtype_info(tensor.dtype).block_size > 1) return out;  // quantized: zeros will do
  convert(DType::F32, std::as_bytes(std::span(tensor.values)), tensor.dtype, out, n);
  return out;
}

// Tensors given as their stored bytes (quantized ones, say), one vector per tensor.
inline void write_tensor_bytes(const std::string& path, const std::vector<TensorToWrite>& layout,
                               const std::vector<std::vector<std::byte>>& bytes,
                               std::vector<std::pair<std::string, std::string>> metadata = {},
                               bool gguf = false) {
  const TensorBytesSource source = [&](std::size_t index, std::uint64_t offset,
                                       std::span<std::byte> out) {
    std::copy_n(bytes[index].begin() + static_cast<std::ptrdiff_t>(offset), out.size(),
                out.begin());
  };
  if (gguf) {
    GgufWriteOptions options;
    for (auto& [key, value] : metadata) {
      options.metadata.push_back(
          {key, MetadataValue{MetadataType::string, MetadataType::string, value}});
    }
    write_gguf(path, layout, source, options);
  } else {
    SafetensorsWriteOptions options;
    options.metadata = std::move(metadata);
    write_safetensors(path, layout, source, options);
  }
}

inline void write_tensors(const std::string& path, const std::vector<FloatTensor>& tensors,
                          std::vector<std::pair<std::string, std::string>> metadata = {},
                          bool gguf = false) {
  std::vector<TensorToWrite> layout;
  std::vector<std::vector<std::byte>> bytes;
  for (const auto& tensor : tensors) {
    layout.push_back({tensor.name, tensor.dtype, tensor.shape});
    bytes.push_back(stored_bytes(tensor));
  }
  write_tensor_bytes(path, layout, bytes, std::move(metadata), gguf);
}

// f32 values of bytes stored as `dtype`.
inline std::vector<float> as_floats(DType dtype, std::span<const std::byte> bytes) {
  const std::uint64_t n = bytes.size() / *dtype_bytes_for(dtype, 1);
  std::vector<float> out(static_cast<std::size_t>(n));
  convert(dtype, bytes, DType::F32, std::as_writable_bytes(std::span(out)), n);
  return out;
}

inline float round_to(DType dtype, float value) {
  std::byte stored[4];
  convert(DType::F32, std::as_bytes(std::span(&value, 1)), dtype, std::span(stored), 1);
  float out = 0;
  convert(dtype, std::span(stored), DType::F32, std::as_writable_bytes(std::span(&out, 1)), 1);
  return out;
}

// One low-rank patch as the reference sees it: W[rows, cols] += scale * up x down.
struct ReferencePatch {
  std::vector<float> up;    // [rows, rank]
  std::vector<float> down;  // [rank, cols]
  std::uint64_t rank = 0;
  float scale = 0;
};

// The reference merge: for each patch in turn, each element w = round(w + scale * sum_r
// up[o, r] * down[r, c]), the sum in f32 over r in order: what applying the patches one by
// one must give, bit for bit.
inline std::vector<float> reference_merge(std::vector<float> weights, DType dtype,
                                          std::uint64_t rows, std::uint64_t cols,
                                          const std::vector<ReferencePatch>& patches) {
  for (const auto& patch : patches) {
    for (std::uint64_t o = 0; o < rows; ++o) {
      for (std::uint64_t c = 0; c < cols; ++c) {
        float sum = 0;
        for (std::uint64_t r = 0; r < patch.rank; ++r) {
          sum += patch.up[o * patch.rank + r] * patch.down[r * cols + c];
        }
        float& w = weights[o * cols + c];
        w = round_to(dtype, w + patch.scale * sum);
      }
    }
  }
  return weights;
}

}  // namespace weightmap::lora_test
