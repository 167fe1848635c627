// A synthetic diffusion-model-like tensor list with deterministic pseudo-random contents, for
// `weightmap sample` and for tests and benchmarks that need realistic files of any size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::testbed {

// "2G", "256MiB", "1.5g", "4096": bytes. K, M, G, T (with or without B or iB, any case) are
// binary multiples (1K = 1024). nullopt when the text is not such a size or it is zero.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// The dtypes `weightmap sample` fills: f16, bf16, f32 for both formats; q8_0, q4_0 for GGUF.
bool sample_dtype_supported(DType dtype, bool gguf);

// `count` tensors shaped like a UNet/DiT checkpoint whose sizes add up to `total_bytes`
// within 1%: three large tensors with about half the bytes, a middle band of 2-D weights
// (and 4-D convolutions for plain types), and many small 1-D norms and biases. Names are
// sorted, as safetensors writers store them. Throws Error(invalid_argument) when the size is
// too small for that many tensors.
std::vector<TensorToWrite> plan_sample_tensors(std::uint64_t total_bytes, std::size_t count,
                                               DType dtype);

// The tensors as a Hugging Face export of such a checkpoint stores them (write them with
// SafetensorsWriteOptions::hugging_face_order): 1-D norms and biases in f32 whatever `dtype`
// the weights have, and an i64 `cond_stage_model.transformer.text_model.embeddings.position_ids`
// [1, 77] appended. The f32 norms and biases add up to 5% to the planned size.
std::vector<TensorToWrite> hugging_face_checkpoint(std::vector<TensorToWrite> tensors);

// Fills bytes [offset, offset + out.size()) of tensor `tensor_index` with small finite
// values of `dtype` (random sign and mantissa, fixed exponent; for q8_0/q4_0 random quants
// with a small f16 scale per block; for i64 the element's index, as position ids are). The bytes
// depend only on (seed, tensor_index, byte position), so any chunking of the writes yields the same
// file.
void fill_sample_bytes(std::uint64_t seed, DType dtype, std::size_t tensor_index,
                       std::uint64_t offset, std::span<std::byte> out);

}  // namespace weightmap::testbed
