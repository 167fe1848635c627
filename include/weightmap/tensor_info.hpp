// One validated entry per tensor, as the format readers produce it (Model::tensors() holds
// them): name, type, shape and where its bytes are. Everything after format/ works on these
// entries and never on raw header bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class FileFormat { safetensors, gguf, pytorch_zip };

std::string_view file_format_name(FileFormat format);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;  // outermost first, as in safetensors
  std::uint32_t file = 0;            // index into the model's files
  std::uint64_t offset = 0;          // absolute byte offset in that file
  std::uint64_t nbytes = 0;
  // Element strides, outermost first, of a tensor that is not stored row-major (PyTorch
  // checkpoints only: transposed views, expanded tensors). Empty means contiguous: the tensor
  // is the `nbytes` at `offset`. Otherwise `offset` is its first element and `nbytes` the
  // size of its contiguous copy; the elements the strides reach lie inside the file.
  std::vector<std::uint64_t> strides;

  std::uint64_t element_count() const;  // product of shape (validated not to overflow)
};

}  // namespace weightmap
WEIGHTMAP_API_END
