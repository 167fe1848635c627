// Applying LoRAs to loaded weights in place (W += scale * up x down), with undo that drops
// the copy-on-write pages of mapped tensors instead of reading the model again. See
// docs/lora.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/loaded_model.hpp"
#include "weightmap/lora_quant_codec.hpp"
#include "weightmap/lora_use.hpp"
#include "weightmap/model.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct LoraApplyOptions {
  unsigned workers = 2;  // tensors patched in parallel
  // f32 working space per worker: rows are patched in tiles of this many bytes, so patching
  // never holds more than a tile (plus the LoRA module's factors) in f32 per worker. A
  // quantized tensor's tiles are whole rows, at least one.
  std::size_t tile_bytes = std::size_t{1} << 20;
  // Patches quantized base tensors; without it they are refused.
  std::shared_ptr<const LoraQuantCodec> quantized;
};

using LoraId = std::uint64_t;

// Patches the tensors of a LoadedModel in place and takes patches back out. Patched tensors
// must be writable (loaded buffers, or mapped copy-on-write: see mark_lora_targets) and
// f32, f16 or bf16, or quantized with LoraApplyOptions::quantized. The model and loaded
// model must outlive the patcher; one thread at a time.
class LoraPatcher {
 public:
  LoraPatcher(const Model& base, LoadedModel& loaded, LoraApplyOptions options = {});
  ~LoraPatcher();
  LoraPatcher(const LoraPatcher&) = delete;
  LoraPatcher& operator=(const LoraPatcher&) = delete;

  // W += scale * delta for every target (on its rows only: a slice of a fused tensor leaves
  // the other rows untouched), written back in the tensor's own type. Everything is checked
  // before the first byte is written: Error(not_found) for a target not loaded,
  // Error(invalid_argument) for one that is not writable, whose [rows, cols] are not the
  // tensor's, or whose rows are out of range or do not fit its module's factors (naming the
  // tensor and the LoRA file), Error(unsupported) "quantized base tensor X needs the ggml
  // adapter" without a codec, and for a quantized tensor whose rows are not whole blocks or
  // whose type the codec refuses. An I/O error reading the LoRA midway undoes what was
  // written and is rethrown.
  LoraId apply(const LoraUse& use);

  // Takes the given applications out: mapped tensors drop their private pages (the file's
  // bytes come back without a read) and get the LoRAs that stay re-applied, as do the parts
  // of neighbouring tensors that shared those pages; loaded tensors are read from the file
  // again. Error(not_found) for an id that is not applied (nothing changes then). Each base
  // file the applications touched is checked first against the identity it had when opened
  // (device, inode, size, mtime): a file that was truncated, rewritten or replaced since is
  // Error(io) naming it, and nothing is undone, so patched pages stay rather than dropping
  // to a file that would give other weights or SIGBUS. (When apply fails on such a file, its
  // rollback is refused the same way and the application stays listed in applied().)
  void undo(std::span<const LoraId> ids);
  void undo(LoraId id) { undo(std::span<const LoraId>(&id, 1)); }
  void undo_all();

  std::vector<LoraId> applied() const;  // in application order

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace weightmap
WEIGHTMAP_API_END
