// Small models for the adapter's tests, written with weightmap's own writer from float values,
// and no_alloc ggml contexts to bind them to.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "weightmap/convert.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::ggml::test {

struct FloatTensor {
  std::string name;
  DType dtype = DType::F32;  // stored as
  std::vector<std::uint64_t> shape;
  std::vector<float> values;  // converted to dtype when written
};

// Deterministic values in [-1, 1), exactly representable in f16.
inline std::vector<float> ramp(std::size_t n, std::uint32_t seed) {
  std::vector<float> out(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& v : out) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int>(x >> 22) - 512) / 512.0f;
  }
  return out;
}

inline std::vector<std::byte> stored_bytes(const FloatTensor& t) {
  const auto n = static_cast<std::uint64_t>(t.values.size());
  std::vector<std::byte> out(*dtype_bytes_for(t.dtype, n));
  convert(DType::F32, std::as_bytes(std::span(t.values)), t.dtype, out, n);
  return out;
}

// The tensors back to back after a header padded to `data_alignment`.
inline void write_model(const std::string& path, const std::vector<FloatTensor>& tensors,
                        std::uint32_t data_alignment = 32) {
  std::vector<TensorToWrite> layout;
  std::vector<std::vector<std::byte>> bytes;
  for (const auto& t : tensors) {
    layout.push_back({t.name, t.dtype, t.shape});
    bytes.push_back(stored_bytes(t));
  }
  SafetensorsWriteOptions options;
  options.data_alignment = data_alignment;
  write_safetensors(
      path, layout,
      [&](std::size_t i, std::uint64_t offset, std::span<std::byte> out) {
        std::copy_n(bytes[i].begin() + static_cast<std::ptrdiff_t>(offset), out.size(),
                    out.begin());
      },
      options);
}

// A no_alloc context, freed with the object.
class Context {
 public:
  explicit Context(std::size_t tensors = 64) {
    ggml_init_params params{ggml_tensor_overhead() * tensors, nullptr, true};
    context_ = ggml_init(params);
  }
  ~Context() { ggml_free(context_); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  ggml_context* get() const { return context_; }
  ggml_tensor* add(const std::string& name, ggml_type type, std::span<const std::uint64_t> shape);

 private:
  ggml_context* context_ = nullptr;
};

inline ggml_tensor* Context::add(const std::string& name, ggml_type type,
                                 std::span<const std::uint64_t> shape) {
  const auto ne = ne_of(shape);
  ggml_tensor* t = ggml_new_tensor(context_, type, static_cast<int>(shape.size()), ne.data());
  ggml_set_name(t, name.c_str());
  return t;
}

inline ggml_backend_dev_t cpu_device() {
  return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

// A tensor's bytes, read back through its buffer.
inline std::vector<std::byte> tensor_bytes(const ggml_tensor* t) {
  std::vector<std::byte> out(ggml_nbytes(t));
  ggml_backend_tensor_get(t, out.data(), 0, out.size());
  return out;
}

}  // namespace weightmap::ggml::test
