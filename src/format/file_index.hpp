// What a format reader returns for one file: its tensors, metadata and data area. open_model
// turns these into a Model; nothing outside format/ sees one.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "weightmap/metadata.hpp"
#include "weightmap/tensor_info.hpp"

namespace weightmap {

// The index of one file, as a format reader returns it. Tensors carry file = 0; offsets are
// absolute in the file and each range was checked to lie inside it.
struct FileIndex {
  FileFormat format = FileFormat::safetensors;
  std::vector<TensorInfo> tensors;  // in file order
  std::vector<std::pair<std::string, MetadataValue>> metadata;
  std::uint64_t data_offset = 0;  // start of the tensor data area
  std::uint32_t alignment = 1;    // alignment the format promises for tensor data
};

}  // namespace weightmap
