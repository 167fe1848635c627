// Synthetic models with deterministic pseudo-random contents: the one generator behind
// `weightmap sample`, the tests, the benchmarks, the examples and the fuzzers' seeds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/tensor_info.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::testbed {

// The dtypes `weightmap sample` fills: f16, bf16, f32 for both formats; q8_0, q4_0 for GGUF.
bool sample_dtype_supported(DType dtype, bool gguf);

// `count` tensors shaped like a UNet/DiT checkpoint whose sizes add up to `total_bytes`
// within 1%: three large tensors with about half the bytes, a middle band of 2-D weights
// (and 4-D convolutions for plain types), and many small 1-D norms and biases. Names are
// sorted, as safetensors writers store them. Throws Error(invalid_argument) when the size is
// too small for that many tensors.
std::vector<TensorToWrite> plan_sample_tensors(std::uint64_t total_bytes, std::size_t count,
                                               DType dtype);

// `count` f16 tensors of shape [4, 8] named like an LLM's layers: a model whose opening is
// almost all index (header parse and validation), for the time-to-index benchmark and the
// fuzzers' seeds.
std::vector<TensorToWrite> plan_index_bound_tensors(std::size_t count);

// The tensors as a Hugging Face export of such a checkpoint stores them (write them with
// SampleFileOptions::hugging_face_order): 1-D norms and biases in f32 whatever `dtype` the
// weights have, and an i64 `cond_stage_model.transformer.text_model.embeddings.position_ids`
// [1, 77] appended. The f32 norms and biases add up to 5% to the planned size.
std::vector<TensorToWrite> hugging_face_checkpoint(std::vector<TensorToWrite> tensors);

// Fills bytes [offset, offset + out.size()) of tensor `tensor_index` with small finite
// values of `dtype` (random sign and mantissa, fixed exponent; for q8_0/q4_0 random quants
// with a small f16 scale per block; for i64 the element's index, as position ids are). The bytes
// depend only on (seed, tensor_index, byte position), so any chunking of the writes yields the same
// file.
void fill_sample_bytes(std::uint64_t seed, DType dtype, std::size_t tensor_index,
                       std::uint64_t offset, std::span<std::byte> out);

struct SampleFileOptions {
  FileFormat format = FileFormat::safetensors;  // or gguf
  std::uint64_t seed = 0;                       // of fill_sample_bytes, kept in the metadata
  // safetensors only: tensors in the order Hugging Face's writer stores them.
  bool hugging_face_order = false;
};

// Writes `tensors` to `path` with fill_sample_bytes's values. The metadata names the
// generator and the seed: safetensors {"format": "pt", "weightmap.sample.seed"}; GGUF
// general.architecture "sample", general.name, weightmap.sample.seed.
WrittenFile write_sample_file(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const SampleFileOptions& options = {});

}  // namespace weightmap::testbed
