// Whether a tensor's bytes in its file are the tensor, contiguous and uncompressed, so that a
// view into the mapping is the tensor itself.
#pragma once

#include "weightmap/model.hpp"

namespace weightmap::loader {

inline bool stored_mappable(const ModelFile& /*file*/, const TensorInfo& tensor) {
  // safetensors and GGUF store every tensor contiguous and raw; a PyTorch checkpoint can hold
  // a strided view (a transposed or expanded tensor), whose bytes at `offset` are not it.
  return tensor.strides.empty();
}

}  // namespace weightmap::loader
