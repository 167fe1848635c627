// Carries out a Plan: maps the files of Mapped tensors (one lease per file), fills buffers
// for Loaded tensors with the copy workers, and reports what it did and why.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <memory>

#include "byte_units.hpp"
#include "io/aligned_buffer.hpp"
#include "io/direct_reader.hpp"
#include "io/file_facts.hpp"
#include "io/file_reader.hpp"
#include "io/mapping_registry.hpp"
#include "io/page_cache.hpp"
#include "load/copy_workers.hpp"
#include "load/file_leases.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"

namespace weightmap {
namespace {

void log(const LoadOptions& options, LogLevel level, std::string_view line) {
  if (options.log) options.log(level, line);
}

struct LoadState {
  const Model& model;
  std::span<const TensorRequest> requests;
  const LoadOptions& options;
  CachePolicy policy;
  Plan plan;
  LoadReport report;
  std::vector<std::shared_ptr<loader::FileLease>> leases;  // per file; null when not mapped
  std::vector<std::shared_ptr<std::byte>> buffers;         // per planned tensor; null if none
  std::vector<std::span<std::byte>> destinations;          // per planned tensor (loaded)
  std::vector<FileFacts> facts;                            // per file

  void note(std::string text) {
    log(options, LogLevel::warning, text);
    report.notes.push_back(std::move(text));
  }

  const TensorInfo& info(const PlannedTensor& planned) const {
    return model.tensors()[planned.tensor];
  }

  void check_element_counts() const {
    for (const auto& planned : plan.tensors) {
      if (planned.reason != Reason::element_count_differs) continue;
      const TensorInfo& tensor = info(planned);
      const auto& wanted = *requests[planned.request].shape;
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("the requested shape [{}] does not have the {} elements of the "
                              "tensor's shape [{}] in the file",
                              fmt::join(wanted, ", "), tensor.element_count(),
                              fmt::join(tensor.shape, ", ")),
                  {model.files()[tensor.file].path, printable(tensor.name), tensor.offset});
    }
  }

  void map_files() {
    const auto& files = model.files();
    std::vector<bool> mapped(files.size(), false);
    std::vector<Access> access(files.size(), Access::read_only);
    // Without hints, populate or mlock a load of every tensor mapped touches no per-tensor
    // memory here.
    const bool ranged = loader::acts_on_ranges(policy);
    std::vector<std::vector<io::ByteRange>> ranges(ranged ? files.size() : 0);
    for (const auto& planned : plan.tensors) {
      if (planned.placement != Placement::mapped) continue;
      mapped[planned.file] = true;
      access[planned.file] = planned.access;  // the planner made it the same per file
      if (ranged) ranges[planned.file].push_back({planned.offset, planned.file_bytes});
    }
    leases.resize(files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (!mapped[i]) continue;
      auto mapping = io::map_model_file(files[i].path, files[i].identity, access[i]);
      leases[i] =
          std::make_shared<loader::FileLease>(std::move(mapping), policy.dontneed_on_release);
      if (ranged) {
        std::vector<std::string> refusals;
        report.cache.remove(leases[i]->apply(
            policy, io::page_cover(std::move(ranges[i]), files[i].size), refusals));
        for (auto& refusal : refusals) note(std::move(refusal));
      }
    }
  }

  void load_tensors() {
    const auto& files = model.files();
    std::vector<loader::CopyJob> jobs;
    std::vector<bool> needed(files.size(), false);
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
      const PlannedTensor& planned = plan.tensors[i];
      if (planned.placement != Placement::loaded) continue;
      if (buffers.empty()) {  // only loads that load anything pay for these
        buffers.resize(plan.tensors.size());
        destinations.resize(plan.tensors.size());
      }
      const TensorRequest& request = requests[planned.request];
      if (request.sink) {
        // Streamed to the caller: no buffer.
      } else if (request.destination != nullptr) {
        destinations[i] = {static_cast<std::byte*>(request.destination),
                           static_cast<std::size_t>(planned.bytes)};
      } else {
        buffers[i] = io::allocate_aligned(static_cast<std::size_t>(planned.bytes),
                                          required_alignment(request.device, planned.dtype),
                                          policy.hugepage);
        destinations[i] = {buffers[i].get(), static_cast<std::size_t>(planned.bytes)};
      }
      const TensorInfo& tensor = info(planned);
      jobs.push_back({tensor.name, planned.file, planned.offset, planned.file_bytes,
                      planned.file_dtype, planned.dtype, tensor.element_count(), destinations[i],
                      tensor.shape, tensor.strides, request.sink ? &request.sink : nullptr,
                      buffers[i] != nullptr});
      needed[planned.file] = true;
    }
    if (jobs.empty()) return;
    // File order, so reads run forward through each file.
    std::sort(jobs.begin(), jobs.end(), [](const loader::CopyJob& a, const loader::CopyJob& b) {
      return a.file != b.file ? a.file < b.file : a.offset < b.offset;
    });

    std::vector<std::unique_ptr<io::FileReader>> readers(files.size());
    std::vector<std::unique_ptr<io::DirectReader>> direct(files.size());
    std::vector<loader::CopySource> sources(files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      if (!needed[i]) continue;
      readers[i] = std::make_unique<io::FileReader>(files[i].path);
      io::check_unchanged(readers[i]->identity(), files[i].identity, files[i].path);
      sources[i].reader = readers[i].get();
      FileChoice& choice = report.files[i];
      // The auto mode never uses O_DIRECT: see choose_drop_behind.
      const bool auto_drops =
          options.mode == LoadMode::automatic && choose_drop_behind(jobs, i, choice);
      if (options.mode == LoadMode::direct) {
        std::string refusal;
        direct[i] = io::DirectReader::open(files[i].path, &refusal);
        if (!direct[i]) {
          note(fmt::format("{}: the filesystem refuses direct I/O ({}); read with pread instead",
                           files[i].path, refusal));
        }
        sources[i].direct = direct[i].get();
      }
      sources[i].drop_behind = policy.dontneed_on_release || auto_drops;
      choice.read_with = sources[i].direct != nullptr ? "O_DIRECT"
                         : auto_drops                 ? "pread, dropping pages behind"
                                                      : "pread";
      advise_reads(*readers[i]);
    }

    loader::CopySettings settings;
    settings.workers = options.workers;
    settings.staging_bytes_cap = options.staging_bytes_cap;
    settings.progress = &options.progress;
    settings.cancel = options.cancel;
    const loader::CopyStats stats = loader::run_copy_jobs(jobs, sources, settings);
    report.workers = stats.workers;
    report.peak_staging_bytes = stats.peak_staging_bytes;
    drop_read_ranges(jobs, readers, sources);
  }

  // Workers drop each tensor's range once copied, but readahead they started can land after
  // a neighbour's drop: one more pass over everything read, now that all reads are done.
  void drop_read_ranges(const std::vector<loader::CopyJob>& jobs,
                        const std::vector<std::unique_ptr<io::FileReader>>& readers,
                        const std::vector<loader::CopySource>& sources) {
    std::vector<std::vector<io::ByteRange>> ranges(readers.size());
    for (const auto& job : jobs) {
      if (sources[job.file].drop_behind) ranges[job.file].push_back({job.offset, job.file_bytes});
    }
    for (std::size_t i = 0; i < readers.size(); ++i) {
      if (!readers[i] || ranges[i].empty()) continue;
      for (const auto& range : io::page_cover(std::move(ranges[i]), readers[i]->size())) {
        readers[i]->advise(range.offset, range.bytes, io::Advice::dontneed);
      }
    }
  }

  // The auto mode's read method for file `file`: pread when most of the bytes to read are in
  // the page cache (reading them from there is a memcpy); when most are not, pread too, but
  // each tensor's pages are dropped once it is read, so the cache does not end up holding a
  // second copy of tensors that go to a device or get converted. Measured on an 8 GiB model,
  // cold, for a device: that took 3.3-3.8 s, O_DIRECT (synchronous, two workers) 7.6-11.5 s,
  // plain pread 4.5-10 s; readahead keeps the disk busy, O_DIRECT at queue depth 2 does not.
  bool choose_drop_behind(const std::vector<loader::CopyJob>& jobs, std::size_t file,
                          FileChoice& choice) {
    std::vector<io::ByteRange> ranges;
    std::uint64_t total = 0;
    for (const auto& job : jobs) {
      if (job.file != file) continue;
      ranges.push_back({job.offset, job.file_bytes});
      total += job.file_bytes;
    }
    const ModelFile& model_file = model.files()[file];
    const std::vector<io::ByteRange> pages = io::page_cover(std::move(ranges), model_file.size);
    const std::uint64_t cached = io::cached_bytes(model_file.path, model_file.size, pages);
    choice.resident_fraction =
        total == 0 ? 1.0 : std::min(1.0, static_cast<double>(cached) / static_cast<double>(total));
    const bool drop = choice.resident_fraction < 0.5;
    choice.why += fmt::format(
        "{}{} loaded tensors: {:.0f}% of their bytes were in the page cache, so {}",
        choice.why.empty() ? "" : "; ", choice.loaded_tensors, choice.resident_fraction * 100,
        drop ? "pread, dropping each tensor's pages once read (the cache would only hold a "
               "second copy)"
             : "pread (from the cache)");
    return drop;
  }

  // The filesystem of every file, and each file's share of the plan.
  void describe_files() {
    const auto& files = model.files();
    report.files.resize(files.size());
    for (std::size_t i = 0; i < files.size(); ++i) {
      report.files[i].path = files[i].path;
      report.files[i].filesystem = facts[i].filesystem;
    }
    for (const auto& planned : plan.tensors) {
      if (planned.placement == Placement::mapped) ++report.files[planned.file].mapped_tensors;
      if (planned.placement == Placement::loaded) ++report.files[planned.file].loaded_tensors;
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      const FileChoice& choice = report.files[i];
      const bool used = choice.mapped_tensors + choice.loaded_tensors > 0;
      if (policy.dontneed_on_release && used &&
          (choice.filesystem == "tmpfs" || choice.filesystem == "ramfs")) {
        // fadvise(DONTNEED) succeeds there and drops nothing: the file lives in the cache.
        note(
            fmt::format("{}: dontneed refused: {} keeps its files in memory, their pages "
                        "cannot be dropped from the page cache",
                        files[i].path, choice.filesystem));
        report.cache.dontneed_on_release = false;
      }
    }
    for (std::size_t i = 0; i < files.size(); ++i) {
      FileChoice& choice = report.files[i];
      if (options.mode != LoadMode::automatic) {
        choice.why = fmt::format("the {} mode", load_mode_name(options.mode));
      } else if (facts[i].risky_to_map && choice.loaded_tensors > 0) {
        choice.why =
            fmt::format("not mapped: {} is a network or FUSE filesystem", choice.filesystem);
      } else if (choice.mapped_tensors > 0) {
        choice.why = fmt::format("{} mapped tensors: {} is a local filesystem",
                                 choice.mapped_tensors, choice.filesystem);
      }
    }
  }

  // The read-side hints of the policy, on the whole file: one call each.
  void advise_reads(const io::FileReader& reader) {
    const auto hint = [&](bool CachePolicy::*flag, io::Advice advice, std::string_view word) {
      if (!(policy.*flag)) return;
      try {
        reader.advise(0, reader.size(), advice);
      } catch (const Error& e) {
        note(fmt::format("{} hint refused: {}", word, e.what()));
        report.cache.*flag = false;
      }
    };
    hint(&CachePolicy::sequential, io::Advice::sequential, "sequential");
    hint(&CachePolicy::random, io::Advice::random, "random");
    hint(&CachePolicy::willneed, io::Advice::willneed, "willneed");
  }

  LoadedModel storages() {
    LoadedModel out;
    out.tensors.reserve(plan.tensors.size());
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
      PlannedTensor& planned = plan.tensors[i];
      const TensorRequest& request = requests[planned.request];
      if (planned.placement == Placement::absent) {
        report.missing_optional.push_back(request.name);
        continue;
      }
      TensorStorage storage;
      storage.name = request.name;
      storage.dtype = planned.dtype;
      storage.shape = std::move(planned.shape);  // the plan ends with this load
      storage.reason = planned.reason;
      if (planned.placement == Placement::mapped) {
        const auto& lease = leases[planned.file];
        storage.mapped = true;
        storage.mapping = loader::mapping_handle(lease);
        storage.bytes = lease->file().span(planned.offset, planned.bytes);
        if (planned.access == Access::copy_on_write) {
          storage.writable = lease->file().writable_span(planned.offset, planned.bytes);
        }
        ++report.mapped_tensors;
        report.mapped_bytes += planned.bytes;
      } else {
        storage.bytes = destinations[i];
        storage.writable = destinations[i];
        storage.buffer = buffers[i];
        ++report.loaded_tensors;
        report.loaded_bytes += planned.bytes;
        if (planned.dtype != planned.file_dtype) ++report.converted_tensors;
        ++report.reasons[*planned.reason];
      }
      out.tensors.push_back(std::move(storage));
    }
    report.mapped_files = static_cast<std::size_t>(
        std::count_if(leases.begin(), leases.end(), [](const auto& l) { return l != nullptr; }));
    report.unrequested = std::move(plan.unrequested);
    report.unrequested_bytes = plan.unrequested_bytes;
    return out;
  }
};

// A plan from plan() for exactly these requests; anything else is the caller's mistake.
void check_plan_matches(const Model& model, std::span<const TensorRequest> requests,
                        const Plan& given) {
  const auto mismatch = [] {
    return Error(ErrorCode::invalid_argument,
                 "the plan was not made for these requests (one planned tensor per request, in "
                 "request order)");
  };
  if (given.tensors.size() != requests.size()) throw mismatch();
  if (!given.files.empty() && given.files.size() != model.files().size()) throw mismatch();
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const PlannedTensor& planned = given.tensors[i];
    if (planned.request != i) throw mismatch();
    if (planned.placement == Placement::absent) continue;
    if (planned.tensor >= model.tensors().size() || planned.file >= model.files().size() ||
        model.tensors()[planned.tensor].name != requests[i].name) {
      throw mismatch();
    }
  }
}

LoadedModel load_planned(const Model& model, std::span<const TensorRequest> requests,
                         const LoadOptions& options, std::optional<Plan> given) {
  const auto start = std::chrono::steady_clock::now();
  if (options.workers == 0) {
    throw Error(ErrorCode::invalid_argument, "a load needs at least one worker");
  }
  LoadState state{model, requests, options, options.cache, {}, {}, {}, {}, {}};
  if (options.cache_from_env) {
    std::vector<std::string> warnings;
    state.policy.merge(CachePolicy::from_env(&warnings));
    for (auto& warning : warnings) state.note(std::move(warning));
  }
  state.report.cache = state.policy;
  state.report.mode = options.mode;
  if (given) {
    check_plan_matches(model, requests, *given);
    state.plan = std::move(*given);
  } else {
    state.plan = plan(model, requests, options);
  }
  // The plan's facts when it has them (the auto mode's): what it was decided on.
  state.facts = state.plan.files.empty() ? file_facts(model) : state.plan.files;
  state.describe_files();
  state.check_element_counts();
  state.map_files();
  state.load_tensors();
  LoadedModel loaded = state.storages();

  LoadReport& report = state.report;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log(options, LogLevel::info, report.summary_line());
  for (const auto& [reason, count] : report.reasons) {
    log(options, LogLevel::debug,
        fmt::format("loaded {} tensors because {}", count, reason_sentence(reason)));
  }
  if (!report.unrequested.empty()) {
    log(options, LogLevel::debug,
        fmt::format("{} tensors in the files were not requested ({:.1f} MiB)",
                    report.unrequested.size(), mib(report.unrequested_bytes)));
  }
  loaded.report = std::move(report);
  return loaded;
}

}  // namespace

std::vector<FileFacts> file_facts(const Model& model) {
  std::vector<FileFacts> facts;
  facts.reserve(model.files().size());
  for (const ModelFile& file : model.files()) facts.push_back(io::file_facts(file.path));
  return facts;
}

LoadedModel load(const Model& model, std::span<const TensorRequest> requests,
                 const LoadOptions& options) {
  return load_planned(model, requests, options, std::nullopt);
}

LoadedModel load(const Model& model, std::span<const TensorRequest> requests,
                 const LoadOptions& options, Plan planned) {
  return load_planned(model, requests, options, std::move(planned));
}

}  // namespace weightmap
