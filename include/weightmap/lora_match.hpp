// Matching a LoRA's modules to the base model's tensors: name rules, the built-in presets
// (sd1, sd2, sdxl, flux) and what matched, slices of fused tensors included. See docs/lora.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/lora_file.hpp"
#include "weightmap/model.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// A LoRA module name starting with `lora_prefix` names the base tensor `base_prefix` + the
// rest (+ the module's target suffix). Kohya names replace every '.' with '_', which is
// ambiguous ("a_b" may be "a.b" or "a_b"), so an underscore name is resolved against the set
// of base tensor names: it matches the one base tensor whose name, with '.' read as '_',
// equals it.
struct LoraNameRule {
  std::string lora_prefix;
  std::string base_prefix;
};

// A module whose name is a base tensor name as it stands (GGUF adapters) matches without any
// rule. Otherwise the preset's tables are tried, then `rules` in order; the first that names
// an existing base tensor wins.
struct LoraNameRules {
  std::vector<LoraNameRule> rules;
  // A built-in preset (see lora_preset_names()): tables that map every trainer's spelling of
  // a model's modules (kohya, diffusers, PEFT, ai-toolkit) onto its checkpoint's names,
  // including modules that patch rows of a fused tensor. Empty: none.
  std::string preset;
};

// Stable-diffusion checkpoints (original layout): lora_unet_ -> model.diffusion_model.,
// lora_te_ -> cond_stage_model.transformer., lora_te1_ -> conditioner.embedders.0.transformer.
// (SDXL), diffusion_model. -> model.diffusion_model.; then the plain rules. Prefixes only:
// the presets also map diffusers' UNet names, OpenCLIP and Flux.
LoraNameRules sd_lora_name_rules();
// Names as they stand, and PEFT's base_model.model. prefix dropped.
LoraNameRules plain_lora_name_rules();

// The built-in presets: "sd1", "sd2", "sdxl", "flux".
std::vector<std::string_view> lora_preset_names();
// The preset whose checkpoint names `base` has (Flux's fused qkv, SDXL's OpenCLIP encoder
// or label_emb, SD 2.x's OpenCLIP encoder, SD 1.x's CLIP encoder or LDM UNet), else "".
std::string detect_lora_preset(const Model& base);
// The preset's tables, then the plain rules. Throws Error(invalid_argument) naming the
// presets for a name that is none of them.
LoraNameRules lora_preset_rules(std::string_view preset);
// lora_preset_rules(detect_lora_preset(base)), or the plain rules when none is detected.
LoraNameRules detected_lora_name_rules(const Model& base);

struct LoraTarget {
  std::size_t module = 0;   // index into LoraFile::modules
  std::string base_tensor;  // its name in the base model
  // The base tensor as a matrix: rows = its outermost dimension, cols = the rest.
  std::uint64_t rows = 0;
  std::uint64_t cols = 0;
  // The rows the module patches, [row_begin, row_begin + row_count): the whole tensor
  // (0, rows) unless the module is one slice of a fused tensor (q, k or v of a fused qkv).
  std::uint64_t row_begin = 0;
  std::uint64_t row_count = 0;
  // How the name matched, for reports: the preset rule ("sdxl openclip (lora_te2_):
  // text_model.encoder.layers.{a}. -> transformer.resblocks.{a}., self_attn.q_proj ->
  // attn.in_proj"), "prefix rule X -> Y", or empty when the module name is the tensor's.
  std::string rule;
};

struct UnmatchedLoraModule {
  std::string module;
  // Base tensors the name could mean when it is ambiguous (two or more); empty when none.
  std::vector<std::string> candidates;
};

struct LoraMatch {
  std::vector<LoraTarget> targets;  // module order
  std::vector<UnmatchedLoraModule> unmatched;
  std::string preset;  // the rules' preset, "" for none
};

// Matches every module of `lora` to a base tensor and checks that its shapes fit (throws
// Error(invalid_argument) naming the tensor when they do not: a LoRA for another model).
// Unmatched modules are listed; with `strict` any of them is an Error(not_found) giving
// their count and first names.
LoraMatch match_lora(const LoraFile& lora, const Model& base, const LoraNameRules& rules,
                     bool strict = false);
// With the rules of the preset detected from the base model's names.
LoraMatch match_lora(const LoraFile& lora, const Model& base, bool strict = false);

}  // namespace weightmap
WEIGHTMAP_API_END
