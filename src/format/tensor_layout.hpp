// Checks the writers share: what makes a list of tensors writable, and the byte size of
// each. Done for every tensor before the first byte goes to disk.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/writer.hpp"

namespace weightmap::format {

struct TensorRules {
  std::string_view format_name;         // "safetensors", "GGUF": for messages
  bool needs_safetensors_name = false;  // the dtype must have a safetensors spelling
  bool needs_ggml_type = false;         // the dtype must be a ggml type
  bool whole_rows = false;              // the innermost dimension is a whole number of blocks
  std::size_t max_dims = 0;             // 0: no limit
};

// Throws Error(invalid_argument / duplicate) naming `path` and the tensor. Returns the byte
// size of each tensor.
std::vector<std::uint64_t> validated_tensor_bytes(const std::string& path,
                                                  const std::vector<TensorToWrite>& tensors,
                                                  const TensorRules& rules);

// Throws Error(invalid_argument) unless `value` is a power of two in [min, max].
void check_alignment(const std::string& path, std::string_view what, std::uint64_t value,
                     std::uint64_t min, std::uint64_t max);

}  // namespace weightmap::format
