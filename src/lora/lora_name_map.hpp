// LoRA module names -> base tensor names, as data: a preset lists the components of a model
// (UNet, text encoders, a transformer), the prefix each trainer gives a component's modules,
// where the component's tensors live in the checkpoint, and rules that rename what follows.
// The tables are in lora_presets.cpp; this is the small interpreter that reads them.
//
// Rule patterns: text matched from the start of the name, where '.' also matches '_' (kohya
// writes every '.' as '_'), and "{a}" / "{b}" capture a decimal number. A pattern that ends in
// '.' matches a prefix; any other must match the whole rest of the name. Replacements write
// the captures back through linear expressions: "{a}", "{2a}", "{3a+b+1}".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weightmap::lora_detail {

// The rows of the base tensor (seen as [rows, cols]) a module patches: all of them, a third
// (q, k or v of a fused qkv / in_proj), or blocks of `cols` rows (Flux's linear1 is q, k, v
// of the hidden width, which is its column count, then the MLP input: the rest).
struct RowSlice {
  enum class Kind : std::uint8_t { whole, third, hidden, past_hidden };
  Kind kind = Kind::whole;
  std::uint8_t index = 0;  // which third / hidden block; past_hidden: how many blocks precede
};

// [begin, begin + count) of a [rows, cols] tensor, or nullopt when it has no such rows.
std::optional<std::pair<std::uint64_t, std::uint64_t>> slice_rows(RowSlice slice,
                                                                  std::uint64_t rows,
                                                                  std::uint64_t cols);
// "0:1/3", "hidden 2", ... for reports; empty for whole.
std::string slice_text(RowSlice slice);

struct NameRule {
  std::string_view from;
  std::string_view to;
  // Rules for what follows `from`: the first that matches rewrites it (else it stays as is).
  std::span<const NameRule> then = {};
  RowSlice slice = {};
  // Replaces the module's target suffix (".weight"): OpenCLIP's fused "in_proj_weight".
  std::optional<std::string_view> tensor_suffix = {};
};

// One part of a model in one checkpoint layout.
struct NameDomain {
  std::string_view name;                            // "unet", "clip", "openclip", "flux"
  std::span<const std::string_view> base_prefixes;  // where its tensors are, tried in order
  std::span<const NameRule> rules;                  // tried in order, then the name as it stands
};

// Modules whose name starts with `lora_prefix` (exactly) belong to `domain`.
struct NameComponent {
  std::string_view lora_prefix;
  const NameDomain* domain;
};

struct NamePreset {
  std::string_view name;         // "sd1", "sd2", "sdxl", "flux"
  std::string_view description;  // for --help and reports
  // The base model is this preset's when one of its tensor names contains one of these.
  std::span<const std::string_view> signatures;
  std::span<const NameComponent> components;
};

// A base tensor a module may mean, in the order they are tried.
struct NameCandidate {
  std::string name;  // without the target suffix
  std::optional<std::string_view> tensor_suffix;
  RowSlice slice;
  std::string rule;  // "sdxl unet: down_blocks.{a}.attentions.{b}. -> input_blocks.{3a+b+1}.1."
};

// Every candidate of `module` under `preset`: per component whose prefix it has, each
// matching rule's result under each base prefix, then the rest as it stands.
std::vector<NameCandidate> name_candidates(const NamePreset& preset, std::string_view module);

// Applies one rule (and its `then` rules) to `name`; nullopt when its pattern does not match.
struct RuleResult {
  std::string name;
  RowSlice slice;
  std::optional<std::string_view> tensor_suffix;
  std::string rule;
};
std::optional<RuleResult> apply_rule(const NameRule& rule, std::string_view name);

// The built-in presets (lora_presets.cpp).
std::span<const NamePreset> name_presets();
const NamePreset* find_name_preset(std::string_view name);

}  // namespace weightmap::lora_detail
