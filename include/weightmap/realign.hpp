// Rewriting a model file so that every tensor starts on a chosen alignment, which lets a
// device with that alignment need map every tensor instead of copying it. See docs/realign.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/model.hpp"
#include "weightmap/tensor_info.hpp"
#include "weightmap/writer.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

inline constexpr std::uint32_t kDefaultRealignment = 64;
inline constexpr std::uint32_t kMinRealignment = 8;
inline constexpr std::uint32_t kMaxRealignment = 1u << 20;

struct RealignOptions {
  // A power of two from kMinRealignment to kMaxRealignment.
  std::uint32_t alignment = kDefaultRealignment;
  // safetensors only: fill the gaps that ordering cannot avoid with extra U8 tensors (named
  // `__padding_N__`), so every tensor of the model is aligned. Off: the file holds exactly
  // the model's tensors and the few that cannot be aligned are reported.
  bool padding_tensors = false;
  std::size_t chunk_bytes = kDefaultWriteChunkBytes;  // bytes copied per read
};

// True when realigning file `file` of `model` (safetensors) to `alignment` by reordering its
// tensors alone leaves some of them off it, so that only padding tensors
// (RealignOptions::padding_tensors) put every tensor on it; false for other formats.
bool realign_needs_padding_tensors(const Model& model, std::uint32_t file,
                                   std::uint32_t alignment = kDefaultRealignment);

// "__padding_N__": the name realign gives the N-th padding tensor it adds.
std::string padding_tensor_name(std::size_t n);
// A U8 tensor named like a padding tensor of realign.
bool is_padding_tensor(const TensorInfo& tensor);

struct RealignResult {
  FileFormat format = FileFormat::safetensors;
  std::uint64_t size = 0;   // bytes of the written file
  std::size_t tensors = 0;  // tensors of the model (padding tensors not counted)
  bool reordered = false;   // the tensors are in another order than in the input
  std::size_t padding_tensors = 0;
  std::uint64_t padding_bytes = 0;  // in padding tensors
  // Tensors whose offset is not a multiple of the alignment, in file order, with their
  // absolute offsets in the output.
  std::vector<std::pair<std::string, std::uint64_t>> unaligned;
};

// Reads the model file `input` (safetensors or GGUF) and writes `output` in the same format
// with every tensor it can on `options.alignment`: safetensors reordered with a padded
// header, GGUF with `general.alignment` set (tensor order and all other metadata kept). The
// bytes are copied in chunks through one buffer, never the whole model. The output is
// written to a temporary file beside it and renamed over `output` on success.
// Throws weightmap::Error: invalid_argument for a bad alignment or when `output` is the same
// file as `input`; unsupported for a PyTorch checkpoint, a folder or a shard index; what
// open_model and the writers throw.
RealignResult realign(const std::string& input, const std::string& output,
                      const RealignOptions& options = {});

}  // namespace weightmap
WEIGHTMAP_API_END
