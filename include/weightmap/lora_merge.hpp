// Merging LoRAs into a new model file, streaming: base + every LoRA written in safetensors or
// GGUF. See docs/lora.md.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/lora_quant_codec.hpp"
#include "weightmap/lora_use.hpp"
#include "weightmap/model.hpp"
#include "weightmap/writer.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct LoraMergeOptions {
  FileFormat format = FileFormat::safetensors;  // safetensors or gguf
  std::size_t chunk_bytes = kDefaultWriteChunkBytes;
  // Patches quantized base tensors (GGUF output keeps their type); without it they are refused.
  std::shared_ptr<const LoraQuantCodec> quantized;
};

// Writes base + every LoRA of `uses` (applied in order, as LoraPatcher would) to `path`,
// streaming: one chunk of the base and the current tensor's LoRA factors in memory at a
// time. Metadata of the base is kept where the output format can hold it (strings into a
// safetensors header). Everything is checked before the first byte is written: Error(
// not_found) for a target the base does not have, Error(invalid_argument) for one whose rows
// are out of range or do not fit its module's factors or the base's shape, Error(unsupported)
// for a quantized target without a codec (as LoraPatcher::apply), and Error(invalid_argument)
// naming `path` when it is a file of the base or a LoRA file under any name (a hard link, a
// symlink). Then what the writer throws. `path` is replaced as write_safetensors does (a
// temporary file renamed into place when complete).
WrittenFile write_merged_model(const Model& base, std::span<const LoraUse> uses,
                               const std::string& path, const LoraMergeOptions& options = {});

}  // namespace weightmap
WEIGHTMAP_API_END
