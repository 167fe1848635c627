// Runtime LoRAs: the engine keeps the base weights as they are in the file and adds
// scale * up (down x) to each product (to the rows of a slice of a fused tensor only); here it
// gets those factors, as f32.
#include "lora/lora_factors.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {

std::map<std::string, std::vector<LoraDelta>> lora_runtime_deltas(std::span<const LoraUse> uses) {
  for (const LoraUse& use : uses) {
    if (!use.lora) throw Error(ErrorCode::invalid_argument, "no LoRA file given");
    for (const LoraTarget& target : use.match.targets) lora::check_target_fits(*use.lora, target);
  }
  std::map<std::string, std::vector<LoraDelta>> out;
  for (const LoraUse& use : uses) {
    const lora::LoraReaders readers(*use.lora);
    for (const LoraTarget& target : use.match.targets) {
      lora::PreparedPatch patch = lora::prepare_patch(*use.lora, readers, target, use.multiplier);
      LoraDelta delta;
      delta.rows = patch.row_count;
      delta.cols = patch.cols;
      delta.row_begin = patch.row_begin;
      delta.base_rows = patch.rows;
      delta.rank = patch.rank;
      delta.scale = patch.scale;
      if (patch.diff != nullptr) {
        delta.full = lora::read_f32(*patch.diff_reader, *patch.diff);
      } else {
        delta.up = std::move(patch.up);
        delta.down = std::move(patch.down);
      }
      out[target.base_tensor].push_back(std::move(delta));
    }
  }
  return out;
}

}  // namespace weightmap
