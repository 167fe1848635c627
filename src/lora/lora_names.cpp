// LoRA module names -> base tensor names, through prefix rules and, for kohya's underscore
// names, resolution against the base model's own tensor names.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <unordered_map>

#include "lora/lora_name_map.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

std::string underscored(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '.', '_');
  return out;
}

// Base tensor names ending in one suffix, keyed by the rest with '.' read as '_'.
using UnderscoreIndex = std::unordered_map<std::string, std::vector<std::string_view>>;

class BaseNames {
 public:
  explicit BaseNames(const Model& base) : base_(base) {}

  bool contains(const std::string& name) const { return base_.find(name) != nullptr; }

  const std::vector<std::string_view>* by_underscores(const std::string& key,
                                                      const std::string& suffix) {
    auto [it, inserted] = indexes_.try_emplace(suffix);
    if (inserted) {
      for (const TensorInfo& tensor : base_.tensors()) {
        const std::string_view name = tensor.name;
        if (!name.ends_with(suffix)) continue;
        it->second[underscored(name.substr(0, name.size() - suffix.size()))].push_back(name);
      }
    }
    const auto found = it->second.find(key);
    return found == it->second.end() ? nullptr : &found->second;
  }

 private:
  const Model& base_;
  std::unordered_map<std::string, UnderscoreIndex> indexes_;  // per suffix
};

struct Resolution {
  std::optional<std::string> name;
  lora_detail::RowSlice slice;
  std::string rule;
  std::vector<std::string> candidates;  // when ambiguous
};

// `mapped` + `suffix` as a base tensor: the name itself, else the one base name that reads
// the same with '.' as '_' (kohya). Ambiguous names fill `out.candidates` (first ones kept).
bool look_up(const std::string& mapped, const std::string& suffix, BaseNames& names,
             Resolution& out) {
  if (names.contains(mapped + suffix)) {
    out.name = mapped + suffix;
    return true;
  }
  const auto* found = names.by_underscores(underscored(mapped), suffix);
  if (found == nullptr) return false;
  if (found->size() == 1) {
    out.name = std::string(found->front());
    return true;
  }
  if (out.candidates.empty()) out.candidates.assign(found->begin(), found->end());
  return false;
}

Resolution resolve(const LoraModule& module, const LoraNameRules& rules,
                   const lora_detail::NamePreset* preset, BaseNames& names) {
  Resolution out;
  const std::string& suffix = module.target_suffix;
  if (names.contains(module.name + suffix)) {
    out.name = module.name + suffix;
    return out;
  }
  if (preset != nullptr) {
    for (const auto& candidate : lora_detail::name_candidates(*preset, module.name)) {
      const std::string tensor_suffix =
          candidate.tensor_suffix ? std::string(*candidate.tensor_suffix) : suffix;
      if (look_up(candidate.name, tensor_suffix, names, out)) {
        out.slice = candidate.slice;
        out.rule = candidate.rule;
        out.candidates.clear();
        return out;
      }
    }
  }
  for (const LoraNameRule& rule : rules.rules) {
    if (!module.name.starts_with(rule.lora_prefix)) continue;
    const std::string mapped = rule.base_prefix + module.name.substr(rule.lora_prefix.size());
    if (look_up(mapped, suffix, names, out)) {
      out.rule = fmt::format("prefix rule \"{}\" -> \"{}\"", rule.lora_prefix, rule.base_prefix);
      out.candidates.clear();
      return out;
    }
  }
  return out;
}

std::string shape_text(const std::optional<TensorInfo>& tensor) {
  return tensor ? fmt::format("[{}]", fmt::join(tensor->shape, ", ")) : std::string("-");
}

// The base tensor seen as a matrix and checked against the module's factors.
LoraTarget fit(const LoraFile& lora, std::size_t index, const TensorInfo& base,
               const Resolution& resolved) {
  const LoraModule& module = lora.modules[index];
  LoraTarget target;
  target.module = index;
  target.base_tensor = base.name;
  target.rule = resolved.rule;
  const std::uint64_t elements = base.element_count();
  target.rows = base.shape.empty() ? 1 : base.shape[0];
  target.cols = target.rows == 0 ? 0 : elements / target.rows;
  const auto rows = lora_detail::slice_rows(resolved.slice, target.rows, target.cols);
  target.row_begin = rows ? rows->first : 0;
  target.row_count = rows ? rows->second : 0;

  bool fits = false;
  if (!rows) {
    fits = false;
  } else if (module.kind == LoraKind::diff) {
    fits = module.diff->element_count() == target.row_count * target.cols;
  } else {
    const std::uint64_t down_cols = module.down->element_count() / module.rank;
    std::uint64_t cols = down_cols;
    if (module.kind == LoraKind::locon_mid) {
      const std::uint64_t window = module.mid->element_count() / (module.rank * module.rank);
      cols = window != 0 && down_cols > UINT64_MAX / window ? 0 : down_cols * window;
    }
    fits = base.shape.size() >= 2 && module.up->shape[0] == target.row_count && cols == target.cols;
  }
  if (!fits) {
    const std::string parts =
        module.kind == LoraKind::diff
            ? fmt::format("diff {}", shape_text(module.diff))
            : fmt::format("up {}, down {}{}", shape_text(module.up), shape_text(module.down),
                          module.mid ? ", mid " + shape_text(module.mid) : std::string());
    const std::string slice =
        resolved.slice.kind == lora_detail::RowSlice::Kind::whole
            ? std::string()
            : fmt::format(" ({})", rows ? fmt::format("rows {}..{}", target.row_begin,
                                                      target.row_begin + target.row_count)
                                        : lora_detail::slice_text(resolved.slice));
    throw Error(ErrorCode::invalid_argument,
                fmt::format("LoRA module {} ({}) does not fit base tensor {}{} of shape [{}]; is "
                            "the LoRA made for another model?",
                            printable(module.name), parts, printable(base.name), slice,
                            fmt::join(base.shape, ", ")),
                {lora.path()});
  }
  return target;
}

}  // namespace

LoraNameRules plain_lora_name_rules() { return {{{"base_model.model.", ""}, {"", ""}}}; }

LoraNameRules sd_lora_name_rules() {
  LoraNameRules rules{{
      {"lora_unet_", "model.diffusion_model."},
      {"lora_te_", "cond_stage_model.transformer."},
      {"lora_te1_", "conditioner.embedders.0.transformer."},
      {"lora_te1_", "cond_stage_model.transformer."},
      {"diffusion_model.", "model.diffusion_model."},
      {"lora_unet_", ""},
  }};
  for (auto& rule : plain_lora_name_rules().rules) rules.rules.push_back(std::move(rule));
  return rules;
}

std::vector<std::string_view> lora_preset_names() {
  std::vector<std::string_view> out;
  for (const auto& preset : lora_detail::name_presets()) out.push_back(preset.name);
  return out;
}

std::string detect_lora_preset(const Model& base) {
  for (const auto& preset : lora_detail::name_presets()) {
    for (const std::string_view signature : preset.signatures) {
      for (const TensorInfo& tensor : base.tensors()) {
        if (tensor.name.find(signature) != std::string::npos) return std::string(preset.name);
      }
    }
  }
  return {};
}

LoraNameRules lora_preset_rules(std::string_view preset) {
  if (lora_detail::find_name_preset(preset) == nullptr) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("unknown LoRA name preset \"{}\" (known: {})", printable(preset),
                            fmt::join(lora_preset_names(), ", ")));
  }
  LoraNameRules rules = plain_lora_name_rules();
  rules.preset = preset;
  return rules;
}

LoraNameRules detected_lora_name_rules(const Model& base) {
  const std::string preset = detect_lora_preset(base);
  return preset.empty() ? plain_lora_name_rules() : lora_preset_rules(preset);
}

LoraMatch match_lora(const LoraFile& lora, const Model& base, bool strict) {
  return match_lora(lora, base, detected_lora_name_rules(base), strict);
}

LoraMatch match_lora(const LoraFile& lora, const Model& base, const LoraNameRules& rules,
                     bool strict) {
  LoraMatch match;
  match.preset = rules.preset;
  const lora_detail::NamePreset* preset = nullptr;
  if (!rules.preset.empty()) {
    preset = lora_detail::find_name_preset(rules.preset);
    if (preset == nullptr) lora_preset_rules(rules.preset);  // throws, naming the presets
  }
  BaseNames names(base);
  for (std::size_t i = 0; i < lora.modules.size(); ++i) {
    Resolution resolved = resolve(lora.modules[i], rules, preset, names);
    if (!resolved.name) {
      match.unmatched.push_back({lora.modules[i].name, std::move(resolved.candidates)});
      continue;
    }
    match.targets.push_back(fit(lora, i, *base.find(*resolved.name), resolved));
  }
  if (strict && !match.unmatched.empty()) {
    constexpr std::size_t kNamesShown = 5;
    std::vector<std::string> shown;
    for (std::size_t i = 0; i < match.unmatched.size() && i < kNamesShown; ++i) {
      shown.push_back(printable(match.unmatched[i].module));
    }
    throw Error(
        ErrorCode::not_found,
        fmt::format("{} LoRA module{} no base tensor: {}{}", match.unmatched.size(),
                    match.unmatched.size() == 1 ? " matches" : "s match", fmt::join(shown, ", "),
                    match.unmatched.size() > kNamesShown ? ", ..." : ""),
        {lora.path()});
  }
  return match;
}

void mark_lora_targets(std::vector<TensorRequest>& requests, std::span<const LoraUse> uses) {
  std::unordered_map<std::string, std::size_t> by_name;
  for (std::size_t i = 0; i < requests.size(); ++i) by_name.emplace(requests[i].name, i);
  for (const LoraUse& use : uses) {
    for (const LoraTarget& target : use.match.targets) {
      const auto it = by_name.find(target.base_tensor);
      if (it != by_name.end()) {
        requests[it->second].writes_in_place = true;
        continue;
      }
      TensorRequest request;
      request.name = target.base_tensor;
      request.writes_in_place = true;
      by_name.emplace(request.name, requests.size());
      requests.push_back(std::move(request));
    }
  }
}

std::vector<TensorRequest> lora_requests(const Model& base, std::span<const LoraUse> uses) {
  std::vector<TensorRequest> requests;
  requests.reserve(base.tensors().size());
  for (const TensorInfo& tensor : base.tensors()) {
    TensorRequest request;
    request.name = tensor.name;
    requests.push_back(std::move(request));
  }
  mark_lora_targets(requests, uses);
  return requests;
}

}  // namespace weightmap
