// `weightmap realign`: rewrites a safetensors or GGUF file with every tensor it can on a
// chosen alignment, so devices that need that alignment map tensors instead of copying them.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "cli/cli.hpp"
#include "weightmap/realign.hpp"

namespace weightmap::cli {

struct RealignCommandOptions {
  std::string input;
  std::string output;
  RealignOptions realign;
  bool json = false;  // one JSON object instead of text
};

// Prints what was written, the order change, padding tensors and any tensor left off the
// alignment (with what would align it) to `out`; with `json`, one JSON object (path, input,
// format, tensors, bytes, alignment, reordered, padding_tensors, padding_bytes, unaligned). On
// weightmap::Error prints "weightmap: " + what() to `err` and returns kExitError.
int run_realign(const RealignCommandOptions& options, std::ostream& out, std::ostream& err);

// Adds the `realign` subcommand to `parent`.
Subcommand add_realign_command(CLI::App& parent);

}  // namespace weightmap::cli
