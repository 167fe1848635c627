// The PATH positionals and the --prefix P option of the subcommands that open one model from
// several sources (inspect, cache), and the sentence that describes a PATH (load too).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "weightmap/model.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace weightmap::cli {

inline constexpr std::string_view kModelPathHelp =
    "A model file (.safetensors, .gguf, .pt/.ckpt), a *.safetensors.index.json of shards or a "
    "folder of such files (read in sorted order); several PATHs form one model";

// CLI11 writes into this object while parsing, after the command was built: it stays where it
// was made (keep it in a shared_ptr the command's action holds).
class ModelSourcesOption {
 public:
  // Adds a required PATH... and a repeatable --prefix P to `command`; `prefix_help` describes
  // what P does for the command.
  ModelSourcesOption(CLI::App& command, std::string_view prefix_help);
  ModelSourcesOption(const ModelSourcesOption&) = delete;
  ModelSourcesOption& operator=(const ModelSourcesOption&) = delete;

  // After parsing: each PATH with the --prefix in force where it was given. CLI11 collects
  // positionals and --prefix values separately; its parse order tells which prefix came
  // before each path.
  std::vector<ModelSource> sources() const;

 private:
  std::vector<std::string> paths_;
  std::vector<std::string> prefixes_;
  const CLI::App* command_;
  const CLI::Option* path_option_;
  const CLI::Option* prefix_option_;
};

}  // namespace weightmap::cli
