// `weightmap lora inspect LORA [--base MODEL] [--rules R] [--json]`: what a LoRA file holds
// (naming, each module's kind, rank and alpha) and, against a base model, which base tensor each
// module patches and which match none. `weightmap lora merge BASE LORA[:MULT]... -o OUT`: writes
// base + LoRAs as a new safetensors or GGUF file, streaming.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/cli.hpp"

namespace weightmap::cli {

struct LoraInspectCommandOptions {
  std::string lora;
  std::optional<std::string> base;
  std::optional<float> alpha;  // for modules whose file gives none (PEFT)
  bool json = false;
  // "auto" (the preset detected from the base's names), a preset name, "sd" or "plain".
  std::string rules = "auto";
};

struct LoraMergeCommandOptions {
  std::string base;
  std::vector<std::string> loras;  // PATH or PATH:MULTIPLIER, applied in order
  std::string output;              // .gguf writes GGUF, anything else safetensors
  std::optional<float> alpha;
  bool strict = false;         // a module matching no base tensor is an error, not a warning
  std::string rules = "auto";  // as LoraInspectCommandOptions::rules
  bool json = false;           // one JSON object instead of the line
};

// The --rules help text: the values it takes.
std::string lora_rules_help();

// "x.safetensors:0.5" -> ("x.safetensors", 0.5); without a number after the last ':' the
// whole text is the path and the multiplier 1.
std::pair<std::string, float> parse_lora_argument(std::string_view text);

// Both print "weightmap: " + what() to `err` and return kExitError on weightmap::Error.
int run_lora_inspect(const LoraInspectCommandOptions& options, std::ostream& out,
                     std::ostream& err);
int run_lora_merge(const LoraMergeCommandOptions& options, std::ostream& out, std::ostream& err);

// Adds the `lora` subcommand (with inspect and merge) to `parent`.
Subcommand add_lora_command(CLI::App& parent);

}  // namespace weightmap::cli
