// `weightmap load`: plans and loads every tensor of a model the way an engine would, touches
// every byte (a checksum), and reports what was mapped, copied and converted, how long it
// took, and what it cost in memory and page cache. The file is named load_command so it does
// not shadow the library's weightmap/load.hpp.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/load_mode.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {

struct LoadCommandOptions {
  std::vector<ModelSource> sources;
  LoadMode mode = LoadMode::automatic;  // --mode (auto by default; --no-mmap, --direct-io)
  bool offload = false;                 // every tensor for a device that cannot read host memory
  std::optional<DType> dtype;           // every tensor as this type (converted where it differs)
  bool writable = false;                // tensors writable in place (copy-on-write mappings)
  std::optional<std::string> flags;     // a WEIGHTMAP_MMAP_FLAGS list, merged with the variable
  unsigned threads = 2;                 // loader copy workers
  // Alignment the reading device needs; nullopt: each tensor's natural alignment (of its
  // element or block), what ggml's CPU kernels need. 32 asks like a ggml allocator.
  std::optional<std::size_t> alignment;
  bool json = false;  // one JSON object instead of text
  // Progress bars on `err` while loading and while touching the bytes (the CLI sets it when
  // stderr is a terminal and --json is off).
  bool progress = false;
  unsigned hold_seconds = 0;  // keep everything loaded this long before returning
};

// Prints the report to `out`. Warnings (an unknown --flags word, a tensor that cannot be
// converted to --dtype and is kept in its own type, loader fallbacks) go to `err` and do not
// fail the command. On weightmap::Error prints "weightmap: " + what() to `err` and returns
// kExitError.
int run_load(const LoadCommandOptions& options, std::ostream& out, std::ostream& err);

// Adds the `load` subcommand to `parent`.
Subcommand add_load_command(CLI::App& parent);

}  // namespace weightmap::cli
