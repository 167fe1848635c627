#include "cli/lora_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <memory>
#include <ostream>
#include <vector>

#include "cli/human_bytes.hpp"
#include "cli/model_json.hpp"
#include "cli/model_notes.hpp"
#include "cli/quantized_codec.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::cli {
namespace {

std::string_view alpha_source_name(AlphaSource source) {
  switch (source) {
    case AlphaSource::tensor: return "tensor";
    case AlphaSource::metadata: return "metadata";
    case AlphaSource::option: return "option";
    case AlphaSource::rank: return "rank";
  }
  return "?";
}

std::string candidates_text(const UnmatchedLoraModule& module) {
  if (module.candidates.empty()) return std::string();
  std::vector<std::string> names;
  for (const auto& name : module.candidates) names.push_back(printable(name));
  return fmt::format(" (ambiguous: {})", fmt::join(names, ", "));
}

// Per module, its target (null when unmatched).
std::vector<const LoraTarget*> targets_by_module(const LoraFile& lora, const LoraMatch* match) {
  std::vector<const LoraTarget*> out(lora.modules.size(), nullptr);
  if (match == nullptr) return out;
  for (const auto& target : match->targets) {
    if (target.module < out.size()) out[target.module] = &target;
  }
  return out;
}

bool is_slice(const LoraTarget& target) {
  return target.row_begin != 0 || target.row_count != target.rows;
}

void write_text(const LoraFile& lora, const LoraMatch* match, std::string_view rules_name,
                std::ostream& out) {
  const auto targets = targets_by_module(lora, match);
  out << fmt::format("{}: {} LoRA, {} module{}\n", lora.path(), lora_naming_name(lora.naming),
                     lora.modules.size(), lora.modules.size() == 1 ? "" : "s");
  if (match != nullptr) out << fmt::format("name rules: {}\n", rules_name);
  for (std::size_t i = 0; i < lora.modules.size(); ++i) {
    const LoraModule& module = lora.modules[i];
    out << fmt::format("  {}{}  {}  rank {}  alpha {} ({})", printable(module.name),
                       module.target_suffix == ".bias" ? " (bias)" : "",
                       lora_kind_name(module.kind), module.rank, module.alpha,
                       alpha_source_name(module.alpha_source));
    if (match != nullptr) {
      const LoraTarget* target = targets[i];
      if (target == nullptr) {
        out << "  -> (no match)";
      } else {
        out << "  -> " << printable(target->base_tensor);
        if (is_slice(*target)) {
          out << fmt::format(" rows {}..{} of {}", target->row_begin,
                             target->row_begin + target->row_count, target->rows);
        }
        if (!target->rule.empty()) out << "\n      by " << printable(target->rule);
      }
    }
    out << '\n';
  }
  if (match != nullptr) {
    out << fmt::format("matched {} of {} modules, {} unmatched, {} ignored tensor{}\n",
                       match->targets.size(), lora.modules.size(), match->unmatched.size(),
                       lora.ignored.size(), lora.ignored.size() == 1 ? "" : "s");
    if (!match->unmatched.empty()) {
      out << fmt::format("unmatched {}:\n", match->unmatched.size());
      for (const auto& module : match->unmatched) {
        out << fmt::format("  {}{}\n", printable(module.module), candidates_text(module));
      }
    }
  }
  if (!lora.ignored.empty()) {
    out << fmt::format("ignored {} tensor{} that belong to no LoRA module:\n", lora.ignored.size(),
                       lora.ignored.size() == 1 ? "" : "s");
    for (const auto& name : lora.ignored) out << "  " << printable(name) << '\n';
  }
}

std::string json_names(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  for (const auto& name : names) quoted.push_back(json_string(name));
  return fmt::format("[{}]", fmt::join(quoted, ","));
}

void write_json(const LoraFile& lora, const LoraMatch* match, std::string_view rules_name,
                std::ostream& out) {
  const auto targets = targets_by_module(lora, match);
  std::vector<std::string> modules;
  for (std::size_t i = 0; i < lora.modules.size(); ++i) {
    const LoraModule& module = lora.modules[i];
    std::string entry = fmt::format(
        "{{\"name\":{},\"kind\":{},\"target_suffix\":{},\"rank\":{},\"alpha\":{},"
        "\"alpha_source\":{}",
        json_string(module.name), json_string(lora_kind_name(module.kind)),
        json_string(module.target_suffix), module.rank, module.alpha,
        json_string(alpha_source_name(module.alpha_source)));
    if (match != nullptr) {
      const LoraTarget* target = targets[i];
      if (target == nullptr) {
        entry += ",\"target\":null";
      } else {
        entry += fmt::format(
            ",\"target\":{},\"rows\":{},\"cols\":{},\"row_begin\":{},\"row_count\":{},"
            "\"slice\":{},\"rule\":{}",
            json_string(target->base_tensor), target->rows, target->cols, target->row_begin,
            target->row_count, is_slice(*target) ? "true" : "false", json_string(target->rule));
      }
    }
    modules.push_back(entry + "}");
  }
  out << fmt::format("{{\"path\":{},\"naming\":{},\"modules\":[{}],\"ignored\":{}",
                     json_string(lora.path()), json_string(lora_naming_name(lora.naming)),
                     fmt::join(modules, ","), json_names(lora.ignored));
  if (match != nullptr) {
    std::vector<std::string> unmatched;
    for (const auto& module : match->unmatched) {
      unmatched.push_back(fmt::format("{{\"module\":{},\"candidates\":{}}}",
                                      json_string(module.module), json_names(module.candidates)));
    }
    out << fmt::format(
        ",\"rules\":{},\"preset\":{},\"matched\":{},\"unmatched\":[{}],"
        "\"totals\":{{\"modules\":{},\"matched\":{},\"unmatched\":{},\"ignored\":{}}}",
        json_string(rules_name),
        match->preset.empty() ? std::string("null") : json_string(match->preset),
        match->targets.size(), fmt::join(unmatched, ","), lora.modules.size(),
        match->targets.size(), match->unmatched.size(), lora.ignored.size());
  }
  out << "}\n";
}

struct ChosenRules {
  LoraNameRules rules;
  std::string shown;  // "sdxl (detected)", "flux", "sd (prefix rules)"
};

// --rules: "auto" detects the preset from the base model's names.
ChosenRules choose_rules(const std::string& name, const Model& base) {
  if (name == "auto") {
    const std::string preset = detect_lora_preset(base);
    if (preset.empty()) return {plain_lora_name_rules(), "plain (no preset detected)"};
    return {lora_preset_rules(preset), preset + " (detected)"};
  }
  if (name == "sd") return {sd_lora_name_rules(), "sd (prefix rules)"};
  if (name == "plain") return {plain_lora_name_rules(), "plain"};
  return {lora_preset_rules(name), name};
}

// A file with no module is not a LoRA (a base model given by mistake, say): saying "0
// modules" and going on would merge nothing or list nothing without a word why.
LoraFile read_lora_with_modules(const std::string& path, const LoraReadOptions& options) {
  LoraFile lora = read_lora(path, options);
  if (lora.modules.empty()) {
    const std::size_t tensors = lora.model.tensors().size();
    throw Error(ErrorCode::not_found,
                fmt::format("no LoRA modules in {} ({} tensor{}, none with a LoRA suffix)",
                            lora.path(), tensors, tensors == 1 ? "" : "s"));
  }
  return lora;
}

}  // namespace

std::string lora_rules_help() {
  return fmt::format(
      "Name rules: auto (the preset the base model's names say), {}, sd (prefix rules "
      "only), plain (names as they stand)",
      fmt::join(lora_preset_names(), ", "));
}

std::pair<std::string, float> parse_lora_argument(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon != std::string_view::npos && colon > 0) {
    const std::string_view number = text.substr(colon + 1);
    float value = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (!number.empty() && ec == std::errc() && end == number.data() + number.size() &&
        std::isfinite(value)) {
      return {std::string(text.substr(0, colon)), value};
    }
  }
  return {std::string(text), 1.0f};
}

int run_lora_inspect(const LoraInspectCommandOptions& options, std::ostream& out,
                     std::ostream& err) {
  try {
    const LoraFile lora = read_lora_with_modules(options.lora, {options.alpha});
    std::optional<LoraMatch> match;
    std::string shown;
    if (options.base) {
      const Model base = open_model(*options.base);
      print_model_notes(base, "lora inspect", err);
      const ChosenRules chosen = choose_rules(options.rules, base);
      match = match_lora(lora, base, chosen.rules);
      shown = chosen.shown;
    }
    if (options.json) {
      write_json(lora, match ? &*match : nullptr, shown, out);
    } else {
      write_text(lora, match ? &*match : nullptr, shown, out);
    }
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

int run_lora_merge(const LoraMergeCommandOptions& options, std::ostream& out, std::ostream& err) {
  try {
    const Model base = open_model(options.base);
    print_model_notes(base, "lora merge", err);
    const ChosenRules chosen = choose_rules(options.rules, base);
    std::vector<LoraUse> uses;
    std::size_t patches = 0;
    for (const auto& argument : options.loras) {
      auto [path, multiplier] = parse_lora_argument(argument);
      auto lora = std::make_shared<const LoraFile>(read_lora_with_modules(path, {options.alpha}));
      LoraMatch match = match_lora(*lora, base, chosen.rules, options.strict);
      if (!match.unmatched.empty()) {
        err << fmt::format(
            "weightmap lora merge: {}: {} module{} no base tensor (first: "
            "{}); --strict makes this an error\n",
            path, match.unmatched.size(), match.unmatched.size() == 1 ? " matches" : "s match",
            printable(match.unmatched.front().module));
      }
      patches += match.targets.size();
      uses.push_back({std::move(lora), std::move(match), multiplier});
    }
    // An output that is an input under any name is a usage error (exit 2), refused before
    // anything is written; write_merged_model checks it again.
    std::vector<std::string> inputs;
    for (const ModelFile& file : base.files()) inputs.push_back(file.path);
    for (const LoraUse& use : uses) {
      for (const ModelFile& file : use.lora->model.files()) inputs.push_back(file.path);
    }
    try {
      refuse_output_over_inputs(options.output, inputs);
    } catch (const Error& e) {
      err << "weightmap lora merge: " << e.what() << '\n';
      return kExitUsage;
    }
    weightmap::LoraMergeOptions merge;
    merge.format = options.output.ends_with(".gguf") ? FileFormat::gguf : FileFormat::safetensors;
    merge.quantized = quantized_codec();
    const WrittenFile written = write_merged_model(base, uses, options.output, merge);
    if (options.json) {
      std::vector<std::string> loras;
      for (const LoraUse& use : uses) {
        std::vector<std::string> unmatched;
        for (const auto& module : use.match.unmatched)
          unmatched.push_back(json_string(module.module));
        loras.push_back(
            fmt::format("{{\"path\": {}, \"multiplier\": {}, \"modules\": {}, \"patches\": {}, "
                        "\"unmatched\": [{}]}}",
                        json_string(use.lora->path()), use.multiplier, use.lora->modules.size(),
                        use.match.targets.size(), fmt::join(unmatched, ", ")));
      }
      out << fmt::format(
          "{{\"path\": {}, \"base\": {}, \"format\": \"{}\", \"tensors\": {}, \"bytes\": {}, "
          "\"patches\": {}, \"loras\": [{}]}}\n",
          json_string(options.output), json_string(options.base), file_format_name(merge.format),
          base.tensors().size(), written.size, patches, fmt::join(loras, ", "));
      return kExitOk;
    }
    out << fmt::format("wrote {} ({}, {} tensors, {}): {} patches from {} LoRA{}\n", options.output,
                       file_format_name(merge.format), base.tensors().size(),
                       human_bytes(written.size), patches, uses.size(),
                       uses.size() == 1 ? "" : "s");
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

Subcommand add_lora_command(CLI::App& parent) {
  struct Parsed {
    LoraInspectCommandOptions inspect;
    LoraMergeCommandOptions merge;
    std::string base;
    float alpha = 0;
  };
  auto parsed = std::make_shared<Parsed>();
  CLI::App* command = parent.add_subcommand(
      "lora",
      "Inspect LoRA files (kohya, PEFT, LoCon, diffs, GGUF adapters) or merge them into "
      "a base model.");
  command->require_subcommand(1);

  CLI::App* inspect = command->add_subcommand(
      "inspect",
      "Print each module's kind, rank and alpha; with --base, the name preset, the base "
      "tensor (and rows, for a slice of a fused tensor) each module patches and the rule "
      "that matched, and the modules that match none.");
  inspect->add_option("LORA", parsed->inspect.lora, "A LoRA file (safetensors or GGUF)")
      ->required();
  CLI::Option* inspect_base =
      inspect->add_option("--base", parsed->base, "The base model the LoRA is for");
  CLI::Option* inspect_alpha = inspect->add_option(
      "--alpha", parsed->alpha,
      "Alpha for modules whose file gives none (PEFT's lora_alpha from adapter_config.json)");
  inspect->add_flag("--json", parsed->inspect.json, "Print one JSON object");
  inspect->add_option("--rules", parsed->inspect.rules, lora_rules_help())->capture_default_str();

  CLI::App* merge = command->add_subcommand(
      "merge",
      "Write BASE + LoRAs (applied in order, W += multiplier * alpha / rank * up x "
      "down) to a new file, streaming: never the whole model in memory. Quantized base "
      "tensors (q8_0, q4_K, ...) are dequantized, patched and quantized again with ggml "
      "(in builds with the ggml adapter).");
  merge->add_option("BASE", parsed->merge.base, "The base model")->required();
  merge
      ->add_option("LORA", parsed->merge.loras,
                   "LoRA files, each PATH or PATH:MULTIPLIER (default 1)")
      ->required();
  merge
      ->add_option("-o,--output", parsed->merge.output,
                   "The merged file: .gguf writes GGUF, anything else safetensors")
      ->required();
  CLI::Option* merge_alpha = merge->add_option(
      "--alpha", parsed->alpha, "Alpha for modules whose file gives none (PEFT's lora_alpha)");
  merge->add_option("--rules", parsed->merge.rules, lora_rules_help())->capture_default_str();
  merge->add_flag("--strict", parsed->merge.strict,
                  "A LoRA module that matches no base tensor is an error");
  merge->add_flag("--json", parsed->merge.json,
                  "Print one JSON object (path, base, format, tensors, bytes, patches, loras: "
                  "path, multiplier, modules, patches, unmatched)");

  return {command, [=](std::ostream& out, std::ostream& err) {
            if (inspect->parsed()) {
              LoraInspectCommandOptions options = parsed->inspect;
              if (inspect_base->count() > 0) options.base = parsed->base;
              if (inspect_alpha->count() > 0) options.alpha = parsed->alpha;
              return run_lora_inspect(options, out, err);
            }
            LoraMergeCommandOptions options = parsed->merge;
            if (merge_alpha->count() > 0) options.alpha = parsed->alpha;
            return run_lora_merge(options, out, err);
          }};
}

}  // namespace weightmap::cli
