#include "cli/cache_command.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <optional>
#include <ostream>

#include "cli/human_bytes.hpp"
#include "cli/model_json.hpp"
#include "cli/model_notes.hpp"
#include "cli/model_sources_option.hpp"
#include "cli/progress_bar.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model_page_cache.hpp"

namespace weightmap::cli {

namespace {

// Prefetches with a progress bar on `err` (when wanted), through the library's guarded reads.
void prefetch(const Model& model, bool progress, std::ostream& err) {
  std::optional<ProgressBar> bar;
  prefetch_into_page_cache(model, [&](std::uint64_t done, std::uint64_t total) {
    if (!bar) bar.emplace(err, progress, "prefetching", total);
    bar->update(done);
  });
  if (bar) bar->finish();
}

struct Usage {
  std::vector<CacheUsage> files;
  std::vector<CacheUsage> components;  // in order of first tensor
  std::uint64_t bytes = 0;
  std::uint64_t resident_bytes = 0;
};

Usage measure(const Model& model, const std::vector<ModelSource>& sources) {
  const Residency residency = page_cache_residency(model);
  Usage usage;
  for (const FileResidency& file : residency.files) {
    usage.files.push_back({file.path, file.tensor_bytes, file.resident_bytes});
  }
  usage.bytes = residency.tensor_bytes;
  usage.resident_bytes = residency.resident_bytes;
  for (std::size_t i = 0; i < model.tensors().size(); ++i) {
    const TensorInfo& tensor = model.tensors()[i];
    const std::string component = component_of(tensor.name, sources);
    auto it = std::find_if(usage.components.begin(), usage.components.end(),
                           [&](const CacheUsage& c) { return c.name == component; });
    if (it == usage.components.end()) {
      usage.components.push_back({component, 0, 0});
      it = usage.components.end() - 1;
    }
    it->bytes += tensor.nbytes;
    it->resident_bytes += residency.tensor_resident_bytes[i];
  }
  return usage;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  if (whole == 0) return "    -";
  return fmt::format("{:5.1f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string trim_left(std::string text) {
  text.erase(0, text.find_first_not_of(' '));
  return text;
}

void write_text(const Usage& usage, std::ostream& out) {
  out << fmt::format("page cache: {} of {} of tensor data resident ({})\n",
                     human_bytes(usage.resident_bytes), human_bytes(usage.bytes),
                     trim_left(percent(usage.resident_bytes, usage.bytes)));
  const auto rows = [&out](std::string_view title, const std::vector<CacheUsage>& entries) {
    out << title << ":\n";
    for (const CacheUsage& entry : entries) {
      out << fmt::format("  {} {:>10} of {:>10}  {}\n", percent(entry.resident_bytes, entry.bytes),
                         human_bytes(entry.resident_bytes), human_bytes(entry.bytes),
                         printable(entry.name));
    }
  };
  rows("files", usage.files);
  rows("components", usage.components);
}

void write_json(const Usage& usage, std::string_view action, std::ostream& out) {
  const auto array = [](const std::vector<CacheUsage>& entries, std::string_view key) {
    std::string text;
    for (const CacheUsage& entry : entries) {
      text += fmt::format("{}\n    {{\"{}\": {}, \"bytes\": {}, \"resident_bytes\": {}}}",
                          text.empty() ? "" : ",", key, json_string(entry.name), entry.bytes,
                          entry.resident_bytes);
    }
    return text;
  };
  out << "{\n";
  out << fmt::format("  \"action\": {},\n", json_string(action));
  out << fmt::format("  \"bytes\": {},\n  \"resident_bytes\": {},\n", usage.bytes,
                     usage.resident_bytes);
  out << fmt::format("  \"files\": [{}\n  ],\n", array(usage.files, "path"));
  out << fmt::format("  \"components\": [{}\n  ]\n", array(usage.components, "prefix"));
  out << "}\n";
}

}  // namespace

std::string component_of(std::string_view tensor_name, const std::vector<ModelSource>& sources) {
  std::string_view best;
  for (const ModelSource& source : sources) {
    const std::string_view prefix = source.name_prefix;
    if (!prefix.empty() && tensor_name.starts_with(prefix) && prefix.size() > best.size()) {
      best = prefix;
    }
  }
  if (!best.empty()) {
    if (best.size() > 1 && best.ends_with('.')) best.remove_suffix(1);
    return std::string(best);
  }
  return std::string(tensor_name.substr(0, tensor_name.find('.')));
}

int run_cache(const CacheOptions& options, std::ostream& out, std::ostream& err) {
  try {
    const Model model = open_model(options.sources);
    print_model_notes(model, "cache", err);
    if (options.evict) evict_from_page_cache(model);
    if (options.prefetch) prefetch(model, options.progress, err);
    const Usage usage = measure(model, options.sources);
    if (options.json) {
      write_json(usage, options.prefetch ? "prefetch" : options.evict ? "evict" : "none", out);
    } else {
      write_text(usage, out);
    }
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

Subcommand add_cache_command(CLI::App& parent) {
  struct Parsed {
    CacheOptions options;
  };
  auto parsed = std::make_shared<Parsed>();

  CLI::App* command = parent.add_subcommand(
      "cache",
      "Show how much of a model's tensor data is in the page cache, per file and per component "
      "(the --prefix of its paths, or a tensor name's first dotted part); with --prefetch read "
      "it all in first (a progress bar on a terminal), with --evict drop it first.");
  const auto sources = std::make_shared<ModelSourcesOption>(
      *command,
      "Put P in front of the tensor names of the PATHs that follow, until the next --prefix; P "
      "names their component");
  CLI::Option* prefetch_option =
      command->add_flag("--prefetch", parsed->options.prefetch,
                        "Read every tensor's pages into the page cache (through a read-only "
                        "mapping: no private memory), then report");
  command
      ->add_flag("--evict", parsed->options.evict,
                 "Drop the files from the page cache (POSIX_FADV_DONTNEED after writing dirty "
                 "pages back; pages another process has mapped stay), then report")
      ->excludes(prefetch_option);
  command->add_flag("--json", parsed->options.json,
                    "Print one JSON object: files (path, bytes, resident_bytes), components "
                    "(prefix, bytes, resident_bytes), totals");

  return {command, [parsed, sources](std::ostream& out, std::ostream& err) {
            CacheOptions options = parsed->options;
            options.sources = sources->sources();
            options.progress = progress_wanted(err);
            return run_cache(options, out, err);
          }};
}

}  // namespace weightmap::cli
