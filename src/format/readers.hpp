// Entry points of the format readers. Each validates everything it returns: offsets inside
// the source, sizes matching dtype x shape, names unique and valid UTF-8.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "format/file_index.hpp"
#include "io/byte_source.hpp"
#include "weightmap/tensor_info.hpp"

namespace weightmap::format {

// What the first bytes say a file is; nullopt when it is none of the formats we read.
std::optional<FileFormat> sniff_format(const io::ByteSource& source);

FileIndex read_safetensors(const io::ByteSource& source);
FileIndex read_gguf(const io::ByteSource& source);
// PyTorch zip checkpoints (torch.save since 1.6); see docs/pytorch.md.
FileIndex read_pytorch(const io::ByteSource& source);
// True for a pre-zip (PyTorch < 1.6) torch.save file, which weightmap does not read.
bool is_legacy_pytorch(const io::ByteSource& source);

// `model.safetensors.index.json`: tensor name -> shard file name (relative to the index),
// in the order the index lists them, plus its "metadata" object flattened to strings.
struct ShardIndex {
  std::vector<std::pair<std::string, std::string>> weight_map;
  std::vector<std::pair<std::string, MetadataValue>> metadata;
};
ShardIndex read_safetensors_shard_index(const io::ByteSource& source);

}  // namespace weightmap::format
