// `weightmap sample`: writes a synthetic safetensors or GGUF model of a chosen size, tensor
// count and dtype, with deterministic contents, for tests, benchmarks and demos.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "cli/cli.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/tensor_info.hpp"

namespace weightmap::cli {

struct SampleOptions {
  std::string path;
  FileFormat format = FileFormat::safetensors;
  std::uint64_t size = std::uint64_t{256} << 20;  // bytes of tensor data
  std::size_t tensors = 1000;
  DType dtype = DType::F16;
  std::uint64_t seed = 0;
  // safetensors as Hugging Face's writer lays it out (sample_model.hpp's
  // hugging_face_checkpoint, in its order): f32 norms and biases, an i64 position_ids, tensors
  // on 8-byte boundaries.
  bool hugging_face = false;
  bool json = false;  // one JSON object instead of the line
};

// Writes the model and prints one line about it to `out` (with `json`, one JSON object:
// path, format, dtype, tensors, tensor_bytes, bytes, seconds). Returns kExitUsage (with a message
// on `err`) for a combination the command line cannot ask for (a quantized dtype in
// safetensors, a size too small for the tensor count), kExitError when writing fails.
int run_sample(const SampleOptions& options, std::ostream& out, std::ostream& err);

// Adds the `sample` subcommand to `parent`.
Subcommand add_sample_command(CLI::App& parent);

}  // namespace weightmap::cli
