// Runs the weightmap command line in this process, as the binary would, and keeps what it
// printed: tests of every subcommand go through this one entry point.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"

namespace weightmap::test {

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

// `args` without the program name: {"inspect", "--json", path}.
inline CliResult run_cli_captured(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"weightmap"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out, err;
  const int code = cli::run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

}  // namespace weightmap::test
