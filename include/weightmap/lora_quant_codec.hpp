// What lets LoRAs patch quantized base tensors: reading rows of a quantized type as f32 and
// writing them back. The ggml adapter gives one (weightmap::ggml::lora_codec()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "weightmap/dtype.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Reads rows of a quantized type as f32 and writes them back, so LoRAs can patch quantized
// base tensors (dequantize a tile of whole rows, add the patches, requantize in place). The
// core knows no quantized format: the ggml adapter gives one, weightmap::ggml::lora_codec().
// A row is the file shape's innermost dimension (ggml quantizes row by row). Called from
// several threads at once.
class LoraQuantCodec {
 public:
  virtual ~LoraQuantCodec();

  // Throws Error(unsupported) with a sentence saying why when `dtype` cannot be read as f32
  // and written back; the caller adds the file and tensor. Called before anything is patched.
  virtual void check(DType dtype) const = 0;
  // `rows`: whole rows of `dtype`; `out`: their elements.
  virtual void to_f32(DType dtype, std::span<const std::byte> rows, std::span<float> out) const = 0;
  // `values`: whole rows of `row_elements` each; `rows`: their bytes as `dtype`.
  virtual void from_f32(DType dtype, std::uint64_t row_elements, std::span<const float> values,
                        std::span<std::byte> rows) const = 0;
};

}  // namespace weightmap
WEIGHTMAP_API_END
