#include "weightmap/cache_command.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <memory>
#include <ostream>

#include "io/file_reader.hpp"
#include "io/mapping_registry.hpp"
#include "io/page_cache.hpp"
#include "load/file_leases.hpp"
#include "weightmap/error.hpp"
#include "weightmap/human_bytes.hpp"
#include "weightmap/inspect.hpp"
#include "weightmap/model_json.hpp"
#include "weightmap/model_notes.hpp"
#include "weightmap/progress_bar.hpp"

namespace weightmap::cli {
namespace {

// Prefetch reads this much per populate call, so the progress bar moves and a fault is
// found near where it happened.
constexpr std::uint64_t kPrefetchChunk = std::uint64_t{16} << 20;

std::vector<std::vector<io::ByteRange>> tensor_ranges(const Model& model) {
  std::vector<std::vector<io::ByteRange>> ranges(model.files().size());
  for (const TensorInfo& tensor : model.tensors()) {
    if (tensor.nbytes > 0) ranges[tensor.file].push_back({tensor.offset, tensor.nbytes});
  }
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    ranges[i] = io::page_cover(std::move(ranges[i]), model.files()[i].size);
  }
  return ranges;
}

// The tensor of file `file` that holds byte `offset` (for naming a prefetch fault).
const TensorInfo* tensor_at(const Model& model, std::uint32_t file, std::uint64_t offset) {
  const TensorInfo* nearest = nullptr;
  for (const TensorInfo& tensor : model.tensors()) {
    if (tensor.file != file || tensor.nbytes == 0) continue;
    if (offset >= tensor.offset && offset - tensor.offset < tensor.nbytes) return &tensor;
    // A populate fault is reported at a page start, which may precede the tensor's first
    // byte: the next tensor after it is the one that lost its bytes.
    if (tensor.offset > offset && (nearest == nullptr || tensor.offset < nearest->offset)) {
      nearest = &tensor;
    }
  }
  return nearest;
}

}  // namespace

void prefetch_tensors(const Model& model, const std::vector<std::shared_ptr<MappedFile>>& mappings,
                      bool progress, std::ostream& err) {
  const auto ranges = tensor_ranges(model);
  std::uint64_t total = 0;
  for (const auto& file_ranges : ranges) {
    for (const auto& range : file_ranges) total += range.bytes;
  }
  ProgressBar bar(err, progress, "prefetching", total);
  std::uint64_t done = 0;
  bar.update(0);
  for (std::uint32_t file = 0; file < ranges.size(); ++file) {
    for (const auto& range : ranges[file]) {
      for (std::uint64_t at = range.offset; at < range.offset + range.bytes;) {
        const std::uint64_t n = std::min(kPrefetchChunk, range.offset + range.bytes - at);
        try {
          mappings[file]->populate_read(at, n);
        } catch (Error& e) {
          if (const TensorInfo* tensor = tensor_at(model, file, e.offset().value_or(at))) {
            e.add_context({{}, printable(tensor->name), {}});
          }
          throw;
        }
        at += n;
        done += n;
        bar.update(done);
      }
    }
  }
  bar.finish();
}

namespace {

// Writes dirty pages back first: the kernel drops only clean pages. Pages another process
// has mapped stay resident.
void evict(const ModelFile& file) {
  const io::FileReader reader(file.path);
  io::check_unchanged(reader.identity(), file.identity, file.path);
  ::fdatasync(reader.descriptor());
  io::advise_file(reader.descriptor(), 0, file.size, Advice::dontneed, file.path);
}

struct Usage {
  std::vector<CacheUsage> files;
  std::vector<CacheUsage> components;  // in order of first tensor
  std::uint64_t bytes = 0;
  std::uint64_t resident_bytes = 0;
};

// Tensor bytes on resident pages: for each page of the tensor, the bytes of it the tensor holds.
std::uint64_t resident_tensor_bytes(const TensorInfo& tensor, const std::vector<bool>& pages) {
  const std::uint64_t page = io::page_size();
  const std::uint64_t end = tensor.offset + tensor.nbytes;
  std::uint64_t resident = 0;
  for (std::uint64_t p = tensor.offset / page; p * page < end && p < pages.size(); ++p) {
    if (!pages[p]) continue;
    resident += std::min(end, (p + 1) * page) - std::max(tensor.offset, p * page);
  }
  return resident;
}

Usage measure(const Model& model, const std::vector<std::shared_ptr<MappedFile>>& mappings,
              const std::vector<ModelSource>& sources) {
  Usage usage;
  std::vector<std::vector<bool>> pages(model.files().size());
  for (std::size_t i = 0; i < model.files().size(); ++i) {
    const ModelFile& file = model.files()[i];
    usage.files.push_back({file.path, 0, 0});
    const auto whole = mappings[i]->span(0, mappings[i]->size());
    pages[i] = io::resident_pages(whole.data(), whole.size(), file.path);
  }
  for (const TensorInfo& tensor : model.tensors()) {
    const std::uint64_t resident = resident_tensor_bytes(tensor, pages[tensor.file]);
    const std::string component = component_of(tensor.name, sources);
    auto it = std::find_if(usage.components.begin(), usage.components.end(),
                           [&](const CacheUsage& c) { return c.name == component; });
    if (it == usage.components.end()) {
      usage.components.push_back({component, 0, 0});
      it = usage.components.end() - 1;
    }
    for (CacheUsage* entry : {&usage.files[tensor.file], &*it}) {
      entry->bytes += tensor.nbytes;
      entry->resident_bytes += resident;
    }
    usage.bytes += tensor.nbytes;
    usage.resident_bytes += resident;
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
    if (options.evict) {
      for (const ModelFile& file : model.files()) evict(file);
    }
    // Read-only shared mappings: mincore through them reports the page cache without
    // filling it, and populating them fills the page cache and nothing else.
    std::vector<std::shared_ptr<MappedFile>> mappings;
    for (const ModelFile& file : model.files()) {
      mappings.push_back(io::map_model_file(file.path, file.identity, Access::read_only));
    }
    if (options.prefetch) prefetch_tensors(model, mappings, options.progress, err);
    const Usage usage = measure(model, mappings, options.sources);
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
    std::vector<std::string> paths;
    std::vector<std::string> prefixes;
  };
  auto parsed = std::make_shared<Parsed>();

  CLI::App* command = parent.add_subcommand(
      "cache",
      "Show how much of a model's tensor data is in the page cache, per file and per component "
      "(the --prefix of its paths, or a tensor name's first dotted part); with --prefetch read "
      "it all in first (a progress bar on a terminal), with --evict drop it first.");
  CLI::Option* paths_option =
      command
          ->add_option("PATH", parsed->paths,
                       "A model file, a *.safetensors.index.json or a folder; several PATHs form "
                       "one model")
          ->required();
  CLI::Option* prefix_option =
      command
          ->add_option("--prefix", parsed->prefixes,
                       "Put P in front of the tensor names of the PATHs that follow, until the "
                       "next --prefix; P names their component")
          ->type_name("P")
          ->allow_extra_args(false);
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

  return {command,
          [parsed, command, paths_option, prefix_option](std::ostream& out, std::ostream& err) {
            CacheOptions options = parsed->options;
            options.sources = sources_in_order(*command, paths_option, prefix_option);
            options.progress = progress_wanted(err);
            return run_cache(options, out, err);
          }};
}

}  // namespace weightmap::cli
