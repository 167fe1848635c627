#include "cli/model_sources_option.hpp"

#include <CLI/CLI.hpp>

namespace weightmap::cli {

ModelSourcesOption::ModelSourcesOption(CLI::App& command, std::string_view prefix_help)
    : command_(&command),
      path_option_(command.add_option("PATH", paths_, std::string(kModelPathHelp))->required()),
      prefix_option_(command.add_option("--prefix", prefixes_, std::string(prefix_help))
                         ->type_name("P")
                         ->allow_extra_args(false)) {}

std::vector<ModelSource> ModelSourcesOption::sources() const {
  std::vector<ModelSource> sources;
  std::string prefix;
  std::size_t next_path = 0;
  std::size_t next_prefix = 0;
  for (const CLI::Option* option : command_->parse_order()) {
    if (option == prefix_option_) {
      prefix = prefixes_.at(next_prefix++);
    } else if (option == path_option_) {
      sources.push_back({paths_.at(next_path++), prefix});
    }
  }
  return sources;
}

}  // namespace weightmap::cli
