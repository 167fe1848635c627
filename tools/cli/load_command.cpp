#include "cli/load_command.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <thread>

#include "cli/human_bytes.hpp"
#include "cli/model_json.hpp"
#include "cli/model_notes.hpp"
#include "cli/model_sources_option.hpp"
#include "cli/power_of_two_option.hpp"
#include "cli/progress_bar.hpp"
#include "cli/tensor_checksum.hpp"
#include "testbed/process_memory.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model_page_cache.hpp"

namespace weightmap::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The library words its policy warnings after the variable; on this command line the list
// came from --flags.
std::string flags_warning(std::string text) {
  const std::string variable = fmt::format("{}: ", kMmapFlagsVariable);
  if (text.starts_with(variable)) text = "--flags: " + text.substr(variable.size());
  return text;
}

// A tensor kept in its own type: convert() has no such pair.
struct Unconverted {
  std::string tensor;
  DType from = DType::F32;
  DType to = DType::F32;
};

struct Requests {
  std::vector<TensorRequest> requests;
  std::vector<Unconverted> unconverted;
};

// One line per pair of types, not one per tensor (a real model has a thousand): the names
// are in the JSON report.
void warn_unconverted(const std::vector<Unconverted>& unconverted, std::ostream& err) {
  std::vector<std::pair<DType, DType>> pairs;
  for (const Unconverted& u : unconverted) {
    if (std::find(pairs.begin(), pairs.end(), std::pair(u.from, u.to)) == pairs.end()) {
      pairs.emplace_back(u.from, u.to);
    }
  }
  for (const std::pair<DType, DType>& pair : pairs) {
    // Not a structured binding: clang 14 cannot capture those in a lambda.
    const DType from = pair.first;
    const DType to = pair.second;
    const auto of_pair = [from, to](const Unconverted& u) { return u.from == from && u.to == to; };
    const auto first = std::find_if(unconverted.begin(), unconverted.end(), of_pair);
    const auto count = std::count_if(unconverted.begin(), unconverted.end(), of_pair);
    err << fmt::format(
        "weightmap load: warning: {} {} cannot be converted from {} to {}, loaded as {} (first: "
        "{}; all in --json)\n",
        count, count == 1 ? "tensor" : "tensors", dtype_name(from), dtype_name(to),
        dtype_name(from), printable(first->tensor));
  }
}

// One request per tensor, in file order, so the checksum sees bytes in file order.
Requests make_requests(const Model& model, const LoadCommandOptions& options) {
  Requests out;
  out.requests.reserve(model.tensors().size());
  for (const TensorInfo& tensor : model.tensors()) {
    TensorRequest request;
    request.name = tensor.name;
    request.writes_in_place = options.writable;
    request.device.alignment = options.alignment.value_or(0);  // 0: the type's natural one
    request.device.reads_host_memory = !options.offload;
    if (options.dtype && *options.dtype != tensor.dtype) {
      if (can_convert(tensor.dtype, *options.dtype)) {
        request.dtype = options.dtype;
      } else {
        out.unconverted.push_back({tensor.name, tensor.dtype, *options.dtype});
      }
    }
    out.requests.push_back(std::move(request));
  }
  return out;
}

struct Measured {
  LoadReport report;
  std::vector<Unconverted> unconverted;
  std::uint64_t tensor_bytes = 0;  // bytes the caller got, all tensors
  double touch_seconds = 0;
  std::uint64_t checksum = 0;
  testbed::ProcessMemory memory_before;
  testbed::ProcessMemory memory_after;
  Residency residency_before;
  Residency residency_after;
};

void write_text(const Model& model, const Measured& m, std::ostream& out) {
  out << m.report.summary_line() << '\n';
  for (const auto& [reason, count] : m.report.reasons) {
    out << fmt::format("  {} loaded: {}\n", count, reason_sentence(reason));
  }
  out << fmt::format("mode: {}\n", load_mode_name(m.report.mode));
  for (const FileChoice& file : m.report.files) {
    out << fmt::format("  {} ({}): {} mapped, {} loaded{}{}\n", file.path, file.filesystem,
                       file.mapped_tensors, file.loaded_tensors,
                       file.read_with.empty() ? "" : " with " + file.read_with,
                       file.why.empty() ? "" : "; " + file.why);
  }
  const std::string flags = m.report.cache.to_string();
  out << fmt::format("files: {}, {} copy workers, page-cache flags: {}\n", model.files().size(),
                     m.report.workers, flags.empty() ? "none" : flags);
  out << fmt::format("touched {} tensors ({}) in {:.3f} s, checksum {:016x}\n",
                     model.tensors().size(), human_bytes(m.tensor_bytes), m.touch_seconds,
                     m.checksum);
  const testbed::ProcessMemory& after = m.memory_after;
  out << fmt::format(
      "memory: RSS {} = {} anonymous + {} file-backed; PSS {} (before loading: {} anonymous, "
      "{} file-backed)\n",
      human_bytes(after.rss_anon_bytes + after.rss_file_bytes), human_bytes(after.rss_anon_bytes),
      human_bytes(after.rss_file_bytes), human_bytes(after.pss_bytes),
      human_bytes(m.memory_before.rss_anon_bytes), human_bytes(m.memory_before.rss_file_bytes));
  out << fmt::format("page cache: {} of {} of tensor data resident before, {} after\n",
                     human_bytes(m.residency_before.resident_bytes),
                     human_bytes(m.residency_before.tensor_bytes),
                     human_bytes(m.residency_after.resident_bytes));
}

void write_json(const Model& model, const Measured& m, std::ostream& out) {
  const LoadReport& r = m.report;
  std::string files;
  for (const ModelFile& file : model.files()) {
    files += fmt::format("{}{}", files.empty() ? "" : ", ", json_string(file.path));
  }
  std::string reasons;
  for (const auto& [reason, count] : r.reasons) {
    reasons += fmt::format("{}\"{}\": {}", reasons.empty() ? "" : ", ", reason_name(reason), count);
  }
  std::string notes;
  for (const std::string& note : r.notes) {
    notes += fmt::format("{}{}", notes.empty() ? "" : ", ", json_string(note));
  }
  std::string unconverted;
  for (const Unconverted& u : m.unconverted) {
    unconverted += fmt::format("{}{{\"tensor\": {}, \"dtype\": \"{}\", \"requested\": \"{}\"}}",
                               unconverted.empty() ? "" : ", ", json_string(u.tensor),
                               dtype_name(u.from), dtype_name(u.to));
  }
  std::string choices;
  for (const FileChoice& file : r.files) {
    choices += fmt::format(
        "{}{{\"path\": {}, \"filesystem\": {}, \"mapped_tensors\": {}, \"loaded_tensors\": {}, "
        "\"resident_fraction\": {}, \"read_with\": {}, \"why\": {}}}",
        choices.empty() ? "" : ", ", json_string(file.path), json_string(file.filesystem),
        file.mapped_tensors, file.loaded_tensors,
        file.resident_fraction < 0 ? std::string("null")
                                   : fmt::format("{:.4f}", file.resident_fraction),
        json_string(file.read_with), json_string(file.why));
  }
  out << "{\n";
  out << fmt::format("  \"files\": [{}],\n", files);
  out << fmt::format("  \"mode\": {},\n  \"file_choices\": [{}],\n",
                     json_string(load_mode_name(r.mode)), choices);
  out << fmt::format("  \"tensors\": {},\n  \"tensor_bytes\": {},\n", model.tensors().size(),
                     m.tensor_bytes);
  out << fmt::format(
      "  \"mapped_tensors\": {},\n  \"mapped_bytes\": {},\n  \"mapped_files\": {},\n",
      r.mapped_tensors, r.mapped_bytes, r.mapped_files);
  out << fmt::format("  \"loaded_tensors\": {},\n  \"loaded_bytes\": {},\n", r.loaded_tensors,
                     r.loaded_bytes);
  out << fmt::format(
      "  \"converted_tensors\": {},\n  \"unconverted_tensors\": {},\n  \"unconverted\": [{}],\n",
      r.converted_tensors, m.unconverted.size(), unconverted);
  out << fmt::format("  \"reasons\": {{{}}},\n", reasons);
  out << fmt::format("  \"workers\": {},\n  \"peak_staging_bytes\": {},\n  \"cache_flags\": {},\n",
                     r.workers, r.peak_staging_bytes, json_string(r.cache.to_string()));
  out << fmt::format("  \"seconds\": {:.6f},\n  \"touch_seconds\": {:.6f},\n", r.seconds,
                     m.touch_seconds);
  // A string: JSON readers hold numbers as doubles, which would round a 64-bit value.
  out << fmt::format("  \"checksum\": \"{:016x}\",\n", m.checksum);
  out << fmt::format("  \"rss_anon_bytes\": {},\n  \"rss_file_bytes\": {},\n  \"pss_bytes\": {},\n",
                     m.memory_after.rss_anon_bytes, m.memory_after.rss_file_bytes,
                     m.memory_after.pss_bytes);
  out << fmt::format(
      "  \"rss_anon_before_bytes\": {},\n  \"rss_file_before_bytes\": {},\n  \"pss_before_bytes\": "
      "{},\n",
      m.memory_before.rss_anon_bytes, m.memory_before.rss_file_bytes, m.memory_before.pss_bytes);
  out << fmt::format(
      "  \"page_cache_tensor_bytes\": {},\n  \"page_cache_resident_before_bytes\": {},\n"
      "  \"page_cache_resident_after_bytes\": {},\n",
      m.residency_before.tensor_bytes, m.residency_before.resident_bytes,
      m.residency_after.resident_bytes);
  out << fmt::format("  \"notes\": [{}]\n}}\n", notes);
}

}  // namespace

int run_load(const LoadCommandOptions& options, std::ostream& out, std::ostream& err) {
  LoadOptions load_options;
  load_options.mode = options.mode;
  load_options.workers = options.threads;
  if (options.flags) {
    std::vector<std::string> warnings;
    load_options.cache = CachePolicy::parse(*options.flags, &warnings);
    for (auto& warning : warnings) {
      err << "weightmap load: warning: " << flags_warning(std::move(warning)) << '\n';
    }
  }
  // Fallbacks and environment warnings reach the user once, on stderr; they stay in the
  // report (and the JSON notes) too.
  load_options.log = [&err](LogLevel level, std::string_view line) {
    if (level == LogLevel::warning) err << "weightmap load: warning: " << line << '\n';
  };

  try {
    const Model model = open_model(options.sources);
    print_model_notes(model, "load", err);
    Measured m;
    m.residency_before = page_cache_residency(model);
    m.memory_before = testbed::read_process_memory();

    Requests requests = make_requests(model, options);
    warn_unconverted(requests.unconverted, err);
    m.unconverted = std::move(requests.unconverted);
    // The library calls back from one worker at a time; the bar is touched nowhere else
    // until load() returned.
    std::optional<ProgressBar> loading;
    if (options.progress) {
      load_options.progress = [&loading, &err](const LoadProgress& progress) {
        if (!loading) loading.emplace(err, true, "loading", progress.bytes_total);
        loading->update(progress.bytes_done);
        return true;
      };
    }
    const LoadedModel loaded = load(model, requests.requests, load_options);
    if (loading) loading->finish();
    m.report = loaded.report;

    std::uint64_t touch_total = 0;
    for (const TensorStorage& tensor : loaded.tensors) touch_total += tensor.bytes.size();
    // Touching mapped tensors reads them from the disk when they are not in the page cache:
    // on a cold cache this is where a mapped load spends its time.
    ProgressBar touching(err, options.progress, "reading", touch_total);
    const auto touch_start = Clock::now();
    TensorChecksum checksum;
    for (const TensorStorage& tensor : loaded.tensors) {
      checksum.add(tensor);
      m.tensor_bytes += tensor.bytes.size();
      touching.update(m.tensor_bytes);
    }
    touching.finish();
    m.touch_seconds = seconds_since(touch_start);
    m.checksum = checksum.value();

    m.memory_after = testbed::read_process_memory();
    m.residency_after = page_cache_residency(model);
    if (options.json) {
      write_json(model, m, out);
    } else {
      write_text(model, m, out);
    }
    out.flush();
    // For measuring a second process that maps the same files (PSS halves): this one keeps
    // its mappings while the other loads.
    if (options.hold_seconds > 0)
      std::this_thread::sleep_for(std::chrono::seconds(options.hold_seconds));
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

namespace {

std::vector<std::string> mode_names() {
  std::vector<std::string> names;
  for (const LoadMode mode : kLoadModes) names.emplace_back(load_mode_name(mode));
  return names;
}

}  // namespace

Subcommand add_load_command(CLI::App& parent) {
  struct Parsed {
    LoadCommandOptions options;
    std::vector<std::string> paths;
    std::string dtype;
    std::string flags;
    bool no_mmap = false;
    bool direct_io = false;
    std::string mode = "auto";
    std::size_t alignment = 0;
  };
  auto parsed = std::make_shared<Parsed>();

  CLI::App* command = parent.add_subcommand(
      "load",
      "Plan and load every tensor as an engine would (mapped where possible, else copied and "
      "converted), touch every byte (a checksum), and report time, tensors and bytes "
      "mapped/loaded/converted, memory (RSS anonymous and file-backed, PSS) and page-cache "
      "residency before and after.");
  command->add_option("PATH", parsed->paths, std::string(kModelPathHelp))->required();
  CLI::Option* mode_option =
      command
          ->add_option("--mode", parsed->mode,
                       "auto: weightmap chooses per file and tensor (maps what a host-readable "
                       "device can use on a local filesystem; reads the rest with pread, dropping "
                       "each tensor's pages once read when the file was mostly not in the page "
                       "cache) and prints why; mmap: map what "
                       "can be mapped, pread the rest; read: pread everything; direct: O_DIRECT "
                       "everything")
          ->check(CLI::IsMember(mode_names()))
          ->capture_default_str();
  CLI::Option* no_mmap_option =
      command->add_flag("--no-mmap", parsed->no_mmap, "The same as --mode read");
  CLI::Option* direct_io_option = command->add_flag(
      "--direct-io", parsed->direct_io, "The same as --mode direct (with --no-mmap too)");
  no_mmap_option->excludes(mode_option);
  direct_io_option->excludes(mode_option);
  command->add_flag("--offload", parsed->options.offload,
                    "Ask for every tensor as for a device that cannot read host memory (a GPU "
                    "without unified memory): nothing is mapped, every tensor is loaded");
  CLI::Option* dtype_option =
      command
          ->add_option("--dtype", parsed->dtype,
                       "Ask for every tensor as type T (f32, f16, bf16, ...): converted where "
                       "the file differs; a tensor that cannot be converted is reported and "
                       "loaded as it is")
          ->type_name("T")
          ->check(CLI::Validator(
              [](const std::string& text) {
                try {
                  (void)dtype_from_name(text);
                  return std::string();
                } catch (const Error&) {
                  return "not a dtype name (f32, f16, bf16, ...): " + text;
                }
              },
              "T"));
  command->add_flag("--writable", parsed->options.writable,
                    "Ask for writable tensors (copy-on-write mappings: written pages become "
                    "private memory, the file is never changed)");
  CLI::Option* flags_option =
      command
          ->add_option("--flags", parsed->flags,
                       "Page-cache flags, as in WEIGHTMAP_MMAP_FLAGS (merged with it): a comma "
                       "list of sequential, willneed, populate, dontneed, hugepage, random, "
                       "mlock; an unknown word is a warning")
          ->type_name("LIST");
  command->add_option("--threads", parsed->options.threads, "Loader copy workers")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  CLI::Option* alignment_option =
      command
          ->add_option("--alignment", parsed->alignment,
                       "Byte alignment the reading device needs (a power of two; tensors whose "
                       "offset breaks it are copied). Default: each tensor's natural alignment "
                       "(of its element or block), as ggml's CPU kernels need")
          ->type_name("N")
          ->check(power_of_two_validator(1, 4096));
  command->add_flag("--json", parsed->options.json,
                    "Print one JSON object (mapped_tensors, mapped_bytes, loaded_tensors, "
                    "loaded_bytes, converted_tensors, seconds, checksum, rss_anon_bytes, "
                    "rss_file_bytes, pss_bytes, page-cache residency, ...)");
  // For measurements only: keeps the model loaded so a second process's PSS can be read.
  command->add_option("--hold-seconds", parsed->options.hold_seconds)->group("");

  return {command, [parsed, dtype_option, flags_option, alignment_option](std::ostream& out,
                                                                          std::ostream& err) {
            LoadCommandOptions options = parsed->options;
            for (const std::string& path : parsed->paths) options.sources.push_back({path, ""});
            // --no-mmap and --direct-io are the older spellings of --mode read and direct.
            const std::string mode = parsed->direct_io ? "direct"
                                     : parsed->no_mmap ? "read"
                                                       : parsed->mode;
            options.mode = load_mode_named(mode).value();  // --mode's check named a mode
            if (dtype_option->count() > 0) options.dtype = dtype_from_name(parsed->dtype);
            if (flags_option->count() > 0) options.flags = parsed->flags;
            if (alignment_option->count() > 0) options.alignment = parsed->alignment;
            options.progress = !options.json && progress_wanted(err);
            return run_load(options, out, err);
          }};
}

}  // namespace weightmap::cli
