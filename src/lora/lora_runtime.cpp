// Runtime LoRAs: the engine keeps the base weights as they are in the file and adds
// scale * up (down x) to each product; here it gets those factors, as f32.
#include "lora/lora_factors.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {

std::map<std::string, std::vector<LoraDelta>> lora_runtime_deltas(std::span<const LoraUse> uses) {
  std::map<std::string, std::vector<LoraDelta>> out;
  for (const LoraUse& use : uses) {
    const lora::LoraReaders readers(*use.lora);
    for (const LoraTarget& target : use.match.targets) {
      lora::PreparedPatch patch = lora::prepare_patch(*use.lora, readers, target, use.multiplier);
      LoraDelta delta;
      delta.rows = patch.rows;
      delta.cols = patch.cols;
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
