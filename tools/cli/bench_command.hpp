// `weightmap bench`: the loading modes side by side on one model file (mmap, mmap+populate,
// pread copy, O_DIRECT copy, conversion to f32), several runs each, medians, and ratios to
// floors measured in the same run (index-only open, one plain read() of the bytes, memcpy,
// filling fresh memory) and to a baseline loading as stable-diffusion.cpp does.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "cli/cli.hpp"

namespace weightmap::cli {

struct BenchOptions {
  std::string path;
  unsigned runs = 5;
  // Copy and convert rows (and the read()/memcpy floors) work on the first tensors in file
  // order up to this many bytes, so one run's memory stays bounded on large models: the
  // memcpy floor holds two buffers of this size, conversion to f32 up to twice it.
  std::uint64_t bytes_per_run = std::uint64_t{1} << 30;
  unsigned threads = 2;   // loader copy workers, baseline threads, fill floor threads
  bool progress = false;  // a progress bar on `err` (the CLI sets it when stderr is a TTY)
  bool json = false;      // one JSON object instead of the table
  // Cold twins of the rows that read the file into fresh memory: the file is dropped from
  // the page cache before each of their runs.
  bool cold = false;
};

// Prints the environment and the table to `out` (with `json`, one JSON object: the same
// figures, seconds as medians, ratios as numbers). kExitError ("weightmap: FILE: ...") when the
// model cannot be read; kExitUsage when PATH is not one file.
int run_bench(const BenchOptions& options, std::ostream& out, std::ostream& err);

// Adds the `bench` subcommand to `parent`.
Subcommand add_bench_command(CLI::App& parent);

}  // namespace weightmap::cli
