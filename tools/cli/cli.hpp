// The weightmap command line as a function, so tests run it without a process.
#pragma once

#include <functional>
#include <iosfwd>

namespace CLI {
class App;
}

namespace weightmap::cli {

// Exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the model could not be read (weightmap::Error)
inline constexpr int kExitUsage = 2;  // the command line is wrong

// What a subcommand file hands to the dispatcher: its CLI11 sub-app and the action to run
// once the command line parsed (which reads the options the sub-app filled).
struct Subcommand {
  CLI::App* app = nullptr;
  std::function<int(std::ostream& out, std::ostream& err)> run;
};

// Parses argv, runs the chosen subcommand and returns the process exit code. Prints help,
// the version and usage errors the way CLI11 does; never calls exit().
int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace weightmap::cli
