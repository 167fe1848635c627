#include "cli/inspect.hpp"

#include <fnmatch.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>

#include "cli/inspect_text.hpp"
#include "cli/model_json.hpp"
#include "cli/model_notes.hpp"
#include "cli/model_sources_option.hpp"
#include "weightmap/error.hpp"

namespace weightmap::cli {
namespace {

std::vector<const TensorInfo*> select_tensors(const Model& model,
                                              const std::optional<std::string>& filter) {
  std::vector<const TensorInfo*> selected;
  for (const auto& tensor : model.tensors()) {
    // No FNM_PATHNAME: '*' crosses the dots of "model.layers.0.attn".
    if (!filter || fnmatch(filter->c_str(), tensor.name.c_str(), 0) == 0) {
      selected.push_back(&tensor);
    }
  }
  return selected;
}

}  // namespace

int run_inspect(const InspectOptions& options, std::ostream& out, std::ostream& err) {
  try {
    const Model model = open_model(options.sources);
    print_model_notes(model, "inspect", err);
    const bool list_tensors = options.all || options.filter.has_value();
    const auto tensors = select_tensors(model, options.filter);
    if (options.json) {
      write_model_json(model, tensors, out);
      return kExitOk;
    }
    write_summary(model, out);
    if (options.metadata) write_metadata(model, out);
    if (list_tensors) write_tensor_rows(model, tensors, options.filter, out);
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

Subcommand add_inspect_command(CLI::App& parent) {
  // CLI11 writes into these while parsing, after this function returned: they live as long
  // as the action that reads them.
  struct Parsed {
    InspectOptions options;
    std::string filter;
  };
  auto parsed = std::make_shared<Parsed>();

  CLI::App* command = parent.add_subcommand(
      "inspect",
      "Print what model files hold: files, tensor count, bytes per dtype, alignment of tensor "
      "offsets; with --all/--filter one row per tensor, with --metadata the key/value "
      "metadata, with --json all of it as one JSON object.");
  const auto sources = std::make_shared<ModelSourcesOption>(
      *command,
      "Put P in front of the tensor names of the PATHs that follow, until the next --prefix "
      "(--prefix \"\" stops prefixing)");
  command->add_flag("-a,--all", parsed->options.all,
                    "List every tensor: name, dtype, shape, offset, bytes, alignment of the "
                    "offset");
  CLI::Option* filter_option =
      command
          ->add_option("-f,--filter", parsed->filter,
                       "List only tensors whose name matches GLOB (fnmatch: * ? [...]; * also "
                       "matches dots); implies --all, applies to --json too")
          ->type_name("GLOB");
  command->add_flag("-m,--metadata", parsed->options.metadata,
                    "Print metadata as key = value (long arrays abbreviated)");
  command->add_flag("--json", parsed->options.json,
                    "Print one JSON object {files, tensors, metadata} with every tensor (or those "
                    "matching --filter) and all metadata");

  return {command, [parsed, sources, filter_option](std::ostream& out, std::ostream& err) {
            InspectOptions options = parsed->options;
            options.sources = sources->sources();
            if (filter_option->count() > 0) options.filter = parsed->filter;
            return run_inspect(options, out, err);
          }};
}

}  // namespace weightmap::cli
