// `weightmap inspect`: what a model holds (files, tensors, dtypes, alignment, metadata),
// read from the headers only.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {

struct InspectOptions {
  std::vector<ModelSource> sources;   // paths, each with the --prefix given before it
  bool all = false;                   // list every tensor
  std::optional<std::string> filter;  // list tensors whose name matches this glob
  bool metadata = false;              // print metadata key = value
  bool json = false;                  // one JSON object instead of text
};

// Prints to `out`; on weightmap::Error prints "weightmap: " + what() to `err` and returns
// kExitError.
int run_inspect(const InspectOptions& options, std::ostream& out, std::ostream& err);

// Adds the `inspect` subcommand to `parent`.
Subcommand add_inspect_command(CLI::App& parent);

}  // namespace weightmap::cli
