// LoRA through the C API: read a file, match it to a base model with a named preset, and
// apply it to a load in place and undo it with a patcher.
#include "weightmap/lora.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>
#include <string>
#include <string_view>

#include "capi/boundary.hpp"
#include "capi/handles.hpp"
#include "weightmap/error.hpp"

using weightmap::capi::BadArgument;
using weightmap::capi::count_of;
using weightmap::capi::guarded;
using weightmap::capi::require;
using weightmap::capi::require_index;

namespace {

// Presets by name, so a new preset needs no new C call.
weightmap::LoraNameRules rules_of_preset(std::string_view preset, const weightmap::Model& base) {
  if (preset == "auto") return weightmap::detected_lora_name_rules(base);
  if (preset == "sd") return weightmap::sd_lora_name_rules();
  if (preset == "plain") return weightmap::plain_lora_name_rules();
  for (const std::string_view name : weightmap::lora_preset_names()) {
    if (preset == name) return weightmap::lora_preset_rules(name);
  }
  throw weightmap::Error(
      weightmap::ErrorCode::not_found,
      fmt::format("no LoRA name preset {} (known: auto, {}, sd, plain)",
                  weightmap::printable(preset), fmt::join(weightmap::lora_preset_names(), ", ")));
}

}  // namespace

extern "C" {

weightmap_status weightmap_lora_read(const char* path, const float* alpha, weightmap_lora** lora) {
  return guarded([&] {
    require(path, "weightmap_lora_read", "path");
    require(lora, "weightmap_lora_read", "lora");
    weightmap::LoraReadOptions options;
    if (alpha != nullptr) options.alpha = *alpha;
    auto handle = std::make_unique<weightmap_lora>();
    handle->file = std::make_shared<const weightmap::LoraFile>(weightmap::read_lora(path, options));
    *lora = handle.release();
  });
}

void weightmap_lora_free(weightmap_lora* lora) { delete lora; }

weightmap_status weightmap_lora_module_count(const weightmap_lora* lora, size_t* count) {
  return count_of("weightmap_lora_module_count", lora, "lora", count,
                  [](const weightmap_lora& l) { return l.file->modules.size(); });
}

weightmap_status weightmap_lora_match(weightmap_lora* lora, const weightmap_model* base,
                                      const char* preset, int strict, size_t* matched,
                                      size_t* unmatched) {
  return guarded([&] {
    constexpr const char* call = "weightmap_lora_match";
    require(lora, call, "lora");
    require(base, call, "base");
    require(preset, call, "preset");
    lora->match = weightmap::match_lora(*lora->file, *base->model,
                                        rules_of_preset(preset, *base->model), strict != 0);
    if (matched != nullptr) *matched = lora->match->targets.size();
    if (unmatched != nullptr) *unmatched = lora->match->unmatched.size();
  });
}

weightmap_status weightmap_lora_target(const weightmap_lora* lora, size_t index,
                                       const char** base_tensor) {
  return guarded([&] {
    constexpr const char* call = "weightmap_lora_target";
    require(lora, call, "lora");
    require(base_tensor, call, "base_tensor");
    if (!lora->match) throw BadArgument("weightmap_lora_target: the LoRA is not matched yet");
    require_index(index, lora->match->targets.size(), call, "target");
    *base_tensor = lora->match->targets[index].base_tensor.c_str();
  });
}

weightmap_status weightmap_lora_patcher_new(weightmap_load* load,
                                            weightmap_lora_patcher** patcher) {
  return guarded([&] {
    require(load, "weightmap_lora_patcher_new", "load");
    require(patcher, "weightmap_lora_patcher_new", "patcher");
    if (load->state->has_patcher) {
      throw BadArgument("weightmap_lora_patcher_new: this load has a patcher already");
    }
    auto handle = std::make_unique<weightmap_lora_patcher>();
    handle->state = load->state;
    handle->patcher =
        std::make_unique<weightmap::LoraPatcher>(*load->state->model, load->state->loaded);
    load->state->has_patcher = true;
    *patcher = handle.release();
  });
}

void weightmap_lora_patcher_free(weightmap_lora_patcher* patcher) {
  if (patcher == nullptr) return;
  patcher->state->has_patcher = false;
  delete patcher;
}

weightmap_status weightmap_lora_patcher_apply(weightmap_lora_patcher* patcher,
                                              const weightmap_lora* lora, float multiplier,
                                              uint64_t* id) {
  return guarded([&] {
    require(patcher, "weightmap_lora_patcher_apply", "patcher");
    require(lora, "weightmap_lora_patcher_apply", "lora");
    if (!lora->match) {
      throw BadArgument(
          "weightmap_lora_patcher_apply: match the LoRA first (weightmap_lora_match)");
    }
    const weightmap::LoraUse use{lora->file, *lora->match, multiplier};
    const weightmap::LoraId applied = patcher->patcher->apply(use);
    if (id != nullptr) *id = applied;
  });
}

weightmap_status weightmap_lora_patcher_undo(weightmap_lora_patcher* patcher, uint64_t id) {
  return guarded([&] {
    require(patcher, "weightmap_lora_patcher_undo", "patcher");
    patcher->patcher->undo(id);
  });
}

weightmap_status weightmap_lora_patcher_undo_all(weightmap_lora_patcher* patcher) {
  return guarded([&] {
    require(patcher, "weightmap_lora_patcher_undo_all", "patcher");
    patcher->patcher->undo_all();
  });
}

}  // extern "C"
