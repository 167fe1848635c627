// `weightmap cache`: how much of a model's tensor data is in the page cache, per file and per
// component (the --prefix given to its paths, or a tensor name's first dotted part), and the
// two things to do about it: read it all in now (--prefetch) or drop it (--evict).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "weightmap/model.hpp"

namespace weightmap::cli {

struct CacheOptions {
  std::vector<ModelSource> sources;  // paths, each with the --prefix given before it
  bool prefetch = false;             // read every tensor's pages into the page cache first
  bool evict = false;                // drop every file from the page cache first
  bool json = false;                 // one JSON object instead of text
  bool progress = false;             // a progress bar on `err` while prefetching (a terminal)
};

// Residency of a set of tensors, in exact tensor bytes (a page two tensors share counts for
// each only with the bytes it holds of it, so components add up to their files).
struct CacheUsage {
  std::string name;  // the file's path, or the component's prefix
  std::uint64_t bytes = 0;
  std::uint64_t resident_bytes = 0;
};

// The component a tensor belongs to: the longest non-empty --prefix of `sources` its name
// starts with (without a trailing '.'), else its name up to the first '.', else its name.
std::string component_of(std::string_view tensor_name, const std::vector<ModelSource>& sources);

// Evicts or prefetches as asked, then prints the residency to `out`. On weightmap::Error
// (a bad path, a file that changed, a page that cannot be read while prefetching: named with
// its tensor) prints "weightmap: " + what() to `err` and returns kExitError.
int run_cache(const CacheOptions& options, std::ostream& out, std::ostream& err);

// Adds the `cache` subcommand to `parent`.
Subcommand add_cache_command(CLI::App& parent);

}  // namespace weightmap::cli
