#include "cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <exception>
#include <ostream>
#include <string>
#include <vector>

#include "cli/bench_command.hpp"
#include "cli/cache_command.hpp"
#include "cli/inspect.hpp"
#include "cli/load_command.hpp"
#include "cli/lora_command.hpp"
#include "cli/realign_command.hpp"
#include "cli/sample.hpp"
#include "weightmap/version.hpp"

namespace weightmap::cli {

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "weightmap: inspect, load, benchmark, realign, page in or out and LoRA-patch model "
      "files (safetensors, GGUF, PyTorch checkpoints), mapping their weights where it can "
      "instead of copying them.",
      "weightmap"};
  // The library's version: the CLI and the library it runs with are one release.
  app.set_version_flag("--version", std::string(version_string()));
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success, 1 a model file could not be read (or written), 2 the command line is "
      "wrong.");

  // One line per subcommand; each lives in its own file.
  const std::vector<Subcommand> subcommands = {add_inspect_command(app), add_sample_command(app),
                                               add_load_command(app),    add_bench_command(app),
                                               add_realign_command(app), add_cache_command(app),
                                               add_lora_command(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    // Help and --version are successes; everything else CLI11 rejects is a usage error.
    return code == static_cast<int>(CLI::ExitCodes::Success) ? kExitOk : kExitUsage;
  }

  try {
    for (const auto& subcommand : subcommands) {
      if (subcommand.app->parsed()) return subcommand.run(out, err);
    }
  } catch (const std::exception& e) {
    // Subcommands report weightmap::Error themselves; this is the last resort for the rest
    // (out of memory, a filesystem error) so the process never dies with an uncaught throw.
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
  return kExitUsage;  // unreachable: CLI11 requires one subcommand
}

}  // namespace weightmap::cli
