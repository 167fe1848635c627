// Writes synthetic model files with many small tensors, so that opening them measures the
// index (header parse and validation), not I/O of tensor data.
#pragma once

#include <cstddef>
#include <string>

namespace weightmap::testbed {

// `tensors` f16 tensors of shape [4, 8] named like an LLM's layers.
void write_safetensors_model(const std::string& path, std::size_t tensors);
void write_gguf_model(const std::string& path, std::size_t tensors);

// The JSON header of a safetensors file, as the file stores it.
std::string read_safetensors_header(const std::string& path);

}  // namespace weightmap::testbed
