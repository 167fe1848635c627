#include "cli/bench_command.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>

#include "cli/bench_baseline.hpp"
#include "cli/bench_cold.hpp"
#include "cli/bench_file_read.hpp"
#include "cli/bench_fill.hpp"
#include "cli/bench_machine.hpp"
#include "cli/bench_report.hpp"
#include "cli/bench_rows.hpp"
#include "cli/human_bytes.hpp"
#include "cli/load_command.hpp"
#include "cli/model_json.hpp"
#include "cli/model_notes.hpp"
#include "cli/progress_bar.hpp"
#include "testbed/byte_size.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model_page_cache.hpp"

namespace weightmap::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& work) {
  const auto start = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Rows that take microseconds (the index-only open, mmap) are run this many times per run and
// give their median: one sample of a few hundred microseconds is mostly scheduler noise.
constexpr int kQuickRepeats = 15;

double median_of_repeats(const std::function<double()>& work) {
  std::vector<double> seconds;
  for (int i = 0; i < kQuickRepeats; ++i) seconds.push_back(work());
  return median(std::move(seconds));
}

// The bytes a run copies: the first tensors in file order, up to the per-run bound.
struct Selection {
  std::vector<std::string> names;
  std::uint64_t offset = 0;  // the contiguous file range they span
  std::uint64_t range_bytes = 0;
  std::uint64_t tensor_bytes = 0;
  std::size_t convertible = 0;  // tensors convert() can turn into f32 (and are not f32)
  bool strided = false;         // a tensor not stored row-major (PyTorch checkpoints)
};

Selection select_tensors(const Model& model, std::uint64_t bound) {
  Selection s;
  std::vector<const TensorInfo*> ordered;
  for (const TensorInfo& t : model.tensors()) ordered.push_back(&t);
  std::sort(ordered.begin(), ordered.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  std::uint64_t end = 0;
  for (const TensorInfo* t : ordered) {
    if (!s.names.empty() && s.tensor_bytes + t->nbytes > bound) break;
    if (s.names.empty()) s.offset = t->offset;
    s.names.push_back(t->name);
    s.tensor_bytes += t->nbytes;
    end = std::max(end, t->offset + t->nbytes);
    if (t->dtype != DType::F32 && can_convert(t->dtype, DType::F32)) ++s.convertible;
    if (!t->strides.empty()) s.strided = true;
  }
  s.range_bytes = end - s.offset;
  return s;
}

// The baseline's work list: the selected tensors of `model` in file order, as f32 where
// `dtype` asks for it and convert() can (the same rule as the loader rows' requests).
std::vector<BaselineTensor> baseline_tensors(const Model& model,
                                             const std::set<std::string>& chosen,
                                             std::optional<DType> dtype) {
  std::vector<BaselineTensor> out;
  for (const TensorInfo& t : model.tensors()) {
    if (chosen.count(t.name) == 0) continue;
    const bool converts = dtype && t.dtype != *dtype && can_convert(t.dtype, *dtype);
    out.push_back({t.offset, t.nbytes, t.dtype, converts ? *dtype : t.dtype, t.element_count()});
  }
  std::sort(out.begin(), out.end(),
            [](const BaselineTensor& a, const BaselineTensor& b) { return a.offset < b.offset; });
  return out;
}

// Runs `order`'s rows once each, starting at a different row every run, so that over the runs
// no row always goes first (after a warm-up or a drop, the VM's host cache favours that one).
template <typename Step>
void run_rotated(const std::vector<std::size_t>& order, unsigned run, unsigned runs,
                 const Step& step) {
  const std::size_t n = order.size();
  if (n == 0) return;
  const std::size_t first = static_cast<std::size_t>(run) * n / runs;
  for (std::size_t k = 0; k < n; ++k) step(order[(first + k) % n]);
}

}  // namespace

int run_bench(const BenchOptions& options, std::ostream& out, std::ostream& err) {
  try {
    BenchResult result;
    result.date = utc_now();
    result.load_average_start = load_average();
    result.machine = machine_facts();

    const Model model = open_model(options.path);
    print_model_notes(model, "bench", err);
    if (model.files().size() != 1) {
      err << fmt::format("weightmap bench: {} holds {} files; bench takes one model file\n",
                         options.path, model.files().size());
      return kExitUsage;
    }
    const std::string& file = model.files()[0].path;
    const Selection selection = select_tensors(model, options.bytes_per_run);
    const std::set<std::string> chosen(selection.names.begin(), selection.names.end());
    std::uint64_t model_bytes = 0;
    for (const TensorInfo& t : model.tensors()) model_bytes += t.nbytes;

    // Warm the page cache (untimed): every row but the cold ones measures the warm case.
    const auto warm_up = [&] {
      std::vector<std::byte> chunk(std::size_t{8} << 20);
      const ReadOnlyFd fd(file);
      for (std::uint64_t at = 0; at < model.files()[0].size; at += chunk.size()) {
        const std::uint64_t n = std::min<std::uint64_t>(chunk.size(), model.files()[0].size - at);
        read_fully(fd, at, std::span(chunk).first(static_cast<std::size_t>(n)));
      }
    };
    const Residency before = page_cache_residency(model);
    warm_up();

    // Requests: every tensor for the mapped rows, the selection for copies and conversion.
    // With `into`, each request names its destination in that buffer (the caller's memory,
    // already faulted in, as an engine's reused or pre-allocated buffers are); a null buffer
    // only sizes it.
    const auto requests = [&](bool all, std::optional<DType> dtype,
                              std::vector<std::byte>* into = nullptr,
                              std::size_t* into_bytes = nullptr) {
      std::vector<TensorRequest> out_requests;
      std::size_t at = 0;
      for (const TensorInfo& t : model.tensors()) {
        if (!all && chosen.count(t.name) == 0) continue;
        TensorRequest r;
        r.name = t.name;
        if (dtype && t.dtype != *dtype && can_convert(t.dtype, *dtype)) r.dtype = dtype;
        if (into_bytes != nullptr) {
          const DType gets = r.dtype.value_or(t.dtype);
          const auto bytes =
              static_cast<std::size_t>(dtype_bytes_for(gets, t.element_count()).value_or(t.nbytes));
          if (into != nullptr && !into->empty()) {
            r.destination = into->data() + at;
            r.destination_size = bytes;
          }
          at = (at + bytes + 63) / 64 * 64;
        }
        out_requests.push_back(std::move(r));
      }
      if (into_bytes != nullptr) *into_bytes = at;
      return out_requests;
    };
    const auto all_mapped = requests(true, std::nullopt);
    const auto selected = requests(false, std::nullopt);
    const auto selected_f32 = requests(false, DType::F32);
    // Pre-faulted destinations for the "into the caller's buffers" rows: one buffer, the
    // larger (f32) layout, shared by both rows and by the read()/memcpy floors, so the bench
    // holds as little memory as it can: on an 8 GiB model (2 GiB copied) in 24 GiB of RAM,
    // a buffer per row pushed the model out of the page cache and the floors read the disk.
    std::size_t copy_into_bytes = 0;
    std::size_t convert_into_bytes = 0;
    (void)requests(false, std::nullopt, nullptr, &copy_into_bytes);
    (void)requests(false, DType::F32, nullptr, &convert_into_bytes);
    const auto range = static_cast<std::size_t>(selection.range_bytes);
    // Zero-filled: every page faulted in now.
    std::vector<std::byte> callers_buffer(std::max({copy_into_bytes, convert_into_bytes, range}));
    const auto selected_into = requests(false, std::nullopt, &callers_buffer, &copy_into_bytes);
    const auto selected_f32_into =
        requests(false, DType::F32, &callers_buffer, &convert_into_bytes);
    // What a conversion of the selection to f32 writes (tensors that stay as they are count
    // at their own size).
    std::uint64_t fill_bytes = 0;
    for (const TensorInfo& t : model.tensors()) {
      if (chosen.count(t.name) == 0) continue;
      const bool converts = t.dtype != DType::F32 && can_convert(t.dtype, DType::F32);
      fill_bytes +=
          converts ? dtype_bytes_for(DType::F32, t.element_count()).value_or(t.nbytes) : t.nbytes;
    }

    std::set<std::string> notes;
    const auto load_options = [&](bool mmap, bool direct, bool populate, bool hugepage = false) {
      LoadOptions o;
      o.mode = direct ? LoadMode::direct : mmap ? LoadMode::mmap : LoadMode::read;
      o.workers = options.threads;
      o.cache.populate = populate;
      o.cache.hugepage = hugepage;
      o.cache_from_env = false;  // the rows compare the modes, not the user's flags
      return o;
    };
    const auto timed_load = [&](const std::vector<TensorRequest>& r, const LoadOptions& o) {
      // Time to ready: open and index, plan, map or copy. Freeing is not part of it.
      std::optional<Model> opened;
      std::optional<LoadedModel> loaded;
      const auto start = Clock::now();
      opened = open_model(options.path);
      loaded = load(*opened, r, o);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      for (const auto& note : loaded->report.notes) notes.insert(note);
      return seconds;
    };
    const auto timed_baseline = [&](std::optional<DType> dtype) {
      // Timed as the loader rows are: open and index, then load; freeing is not part of it.
      std::optional<Model> opened;
      std::optional<BaselineBuffers> buffers;
      const auto start = Clock::now();
      opened = open_model(options.path);
      buffers = baseline_load(file, baseline_tensors(*opened, chosen, dtype), options.threads);
      return std::chrono::duration<double>(Clock::now() - start).count();
    };
    const auto timed_fill = [&](bool huge_pages) {
      std::optional<FilledBuffer> filled;
      const auto start = Clock::now();
      filled.emplace(
          fill_fresh_buffer(static_cast<std::size_t>(fill_bytes), options.threads, huge_pages));
      return std::chrono::duration<double>(Clock::now() - start).count();
    };

    // The memcpy floor's buffers are pre-faulted once: it measures memory bandwidth alone.
    std::vector<std::byte> memcpy_src(range);
    const std::span<std::byte> memcpy_dst = std::span(callers_buffer).first(range);
    read_fully(file, selection.offset, memcpy_src);

    const std::uint64_t copy_bytes = selection.tensor_bytes;
    std::vector<BenchRow> rows;
    const auto add = [&](BenchRow row) { rows.push_back(std::move(row)); };
    add({.name = "index-only open", .kind = RowKind::open, .run = [&] {
           return median_of_repeats([&] {
             // As in the mapped rows: opening is timed, freeing is not.
             std::optional<Model> opened;
             const auto start = Clock::now();
             opened = open_model(options.path);
             return std::chrono::duration<double>(Clock::now() - start).count();
           });
         }});
    add({.name = "read() into a new buffer",
         .kind = RowKind::read,
         .run =
             [&] {
               return seconds_of([&] {
                 // A fresh allocation, as a loader's buffers are: its page faults count.
                 const std::unique_ptr<std::byte[]> buffer(new std::byte[range]);
                 read_fully(file, selection.offset, std::span(buffer.get(), range));
               });
             },
         .bytes = selection.range_bytes});
    add({.name = "read() into a pre-faulted buffer",
         .kind = RowKind::read_prefaulted,
         .run = [&] { return seconds_of([&] { read_fully(file, selection.offset, memcpy_dst); }); },
         .bytes = selection.range_bytes});
    add({.name = "memcpy (pre-faulted)",
         .kind = RowKind::memcpy,
         .run =
             [&] {
               return seconds_of([&] { std::memcpy(memcpy_dst.data(), memcpy_src.data(), range); });
             },
         .bytes = selection.range_bytes});
    add({.name = "fresh buffer fill",
         .kind = RowKind::fill,
         .run = [&] { return timed_fill(false); },
         .bytes = fill_bytes});
    add({.name = "fresh buffer fill, huge pages",
         .kind = RowKind::fill,
         .run = [&] { return timed_fill(true); },
         .huge_pages = true,
         .bytes = fill_bytes});
    add({.name = "mmap",
         .kind = RowKind::mapped,
         .run =
             [&] {
               return median_of_repeats(
                   [&] { return timed_load(all_mapped, load_options(true, false, false)); });
             },
         .bytes = model_bytes});
    add({.name = "mmap + populate",
         .kind = RowKind::mapped,
         .run = [&] { return timed_load(all_mapped, load_options(true, false, true)); },
         .bytes = model_bytes});
    add({.name = "pread copy",
         .kind = RowKind::copy,
         .run = [&] { return timed_load(selected, load_options(false, false, false)); },
         .bytes = copy_bytes});
    add({.name = "pread copy, caller's buffers",
         .kind = RowKind::copy,
         .run = [&] { return timed_load(selected_into, load_options(false, false, false)); },
         .callers_buffers = true,
         .bytes = copy_bytes});
    add({.name = "O_DIRECT copy",
         .kind = RowKind::copy,
         .run = [&] { return timed_load(selected, load_options(false, true, false)); },
         .bytes = copy_bytes});
    const bool baseline_rows = !selection.strided;
    if (baseline_rows) {
      add({.name = "baseline copy",
           .kind = RowKind::copy,
           .run = [&] { return timed_baseline(std::nullopt); },
           .baseline = true,
           .bytes = copy_bytes});
    } else {
      notes.insert("baseline rows skipped: the selection holds tensors not stored row-major");
    }
    const bool convert_rows = selection.convertible > 0;
    if (convert_rows) {
      add({.name = "convert to f32",
           .kind = RowKind::convert,
           .run = [&] { return timed_load(selected_f32, load_options(true, false, false)); },
           .bytes = copy_bytes});
      add({.name = "convert to f32, hugepage buffers",
           .kind = RowKind::convert,
           .run = [&] { return timed_load(selected_f32, load_options(true, false, false, true)); },
           .huge_pages = true,
           .bytes = copy_bytes});
      add({.name = "convert to f32, caller's buffers",
           .kind = RowKind::convert,
           .run = [&] { return timed_load(selected_f32_into, load_options(true, false, false)); },
           .callers_buffers = true,
           .bytes = copy_bytes});
      if (baseline_rows) {
        add({.name = "baseline convert to f32",
             .kind = RowKind::convert,
             .run = [&] { return timed_baseline(DType::F32); },
             .baseline = true,
             .bytes = copy_bytes});
      }
    }
    if (options.cold) {
      // Cold twins of the rows that read the file into fresh memory (the caller's-buffers and
      // hugepage variants and the warm-only floors stay warm).
      const std::set<std::string> cold_rows = {"read() into a new buffer",
                                               "mmap + populate",
                                               "pread copy",
                                               "O_DIRECT copy",
                                               "baseline copy",
                                               "convert to f32",
                                               "baseline convert to f32"};
      const std::size_t warm_count = rows.size();
      for (std::size_t i = 0; i < warm_count; ++i) {
        if (cold_rows.count(rows[i].name) == 0) continue;
        BenchRow twin = rows[i];
        twin.name += ", cold";
        twin.cold = true;
        rows.push_back(std::move(twin));
      }
    }

    std::vector<std::size_t> warm_order;
    std::vector<std::size_t> cold_order;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      (rows[i].cold ? cold_order : warm_order).push_back(i);
    }
    const unsigned runs = std::max(options.runs, 1u);
    ProgressBar bar(err, options.progress, "bench", runs * rows.size(), ProgressBar::Unit::steps);
    std::uint64_t step = 0;
    // Each run: the warm rows, then the cold ones, each group in rotated order. Rows take
    // turns within a run, so a noisy moment hits all of them alike.
    for (unsigned run = 0; run < runs; ++run) {
      if (run > 0 && !cold_order.empty()) warm_up();  // the last run's cold rows emptied it
      run_rotated(warm_order, run, runs, [&](std::size_t i) {
        bar.update(step++, rows[i].name);
        rows[i].seconds.push_back(rows[i].run());
      });
      run_rotated(cold_order, run, runs, [&](std::size_t i) {
        bar.update(step++, rows[i].name);
        drop_from_page_cache(file);
        const Residency after = page_cache_residency(model);
        ++result.cold_drops;
        result.cold_kept_bytes = std::max(result.cold_kept_bytes, after.resident_bytes);
        rows[i].seconds.push_back(rows[i].run());
      });
    }
    bar.finish();

    // A few pages may come back between the drop and the check (another process reading the
    // file); more than 1% kept means the drop did not work here.
    if (result.cold_kept_bytes > before.tensor_bytes / 100) {
      notes.insert(fmt::format(
          "the page cache kept up to {} of {} after POSIX_FADV_DONTNEED (a tmpfs file, or pages "
          "another process holds mapped): the cold rows read partly from memory",
          human_bytes(result.cold_kept_bytes), human_bytes(before.tensor_bytes)));
    }
    if (result.machine.transparent_huge_pages == "never") {
      notes.insert(
          "transparent huge pages are disabled (/sys/kernel/mm/transparent_hugepage/enabled: "
          "never): the huge-page rows fill 4 KiB pages");
    } else if (result.machine.transparent_huge_pages.empty()) {
      notes.insert(
          "transparent huge pages unknown (/sys/kernel/mm/transparent_hugepage/enabled "
          "unreadable): the huge-page rows may fill 4 KiB pages");
    }

    result.load_average_end = load_average();
    result.file = file;
    result.format = std::string(file_format_name(model.files()[0].format));
    result.tensors = model.tensors().size();
    result.tensor_bytes = model_bytes;
    result.convert = std::string(convert_implementation());
    result.threads = options.threads;
    result.runs = runs;
    result.cold = options.cold;
    result.resident_before_bytes = before.resident_bytes;
    result.resident_tensor_bytes = before.tensor_bytes;
    result.selected_tensors = selection.names.size();
    result.selected_bytes = copy_bytes;
    result.selected_range_bytes = selection.range_bytes;
    result.fill_bytes = fill_bytes;
    result.convert_rows = convert_rows;
    result.rows = std::move(rows);
    result.notes.assign(notes.begin(), notes.end());
    if (options.json) {
      print_bench_json(result, out);
    } else {
      print_bench_text(result, out);
    }
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

Subcommand add_bench_command(CLI::App& parent) {
  struct Parsed {
    BenchOptions options;
    std::string bytes_per_run = "1G";
  };
  auto parsed = std::make_shared<Parsed>();
  CLI::App* command = parent.add_subcommand(
      "bench",
      "Run the loading modes side by side on one model file (mmap, mmap+populate, pread copy, "
      "O_DIRECT copy, convert to f32, and a baseline loading as stable-diffusion.cpp does), "
      "warm cache (and cold with --cold), and print medians with ratios to floors measured in "
      "the same run (index-only open, one plain read(), memcpy, filling fresh memory) and to "
      "the baseline.");
  command->add_option("PATH", parsed->options.path, "One .safetensors or .gguf file")->required();
  command->add_option("--runs", parsed->options.runs, "Runs per row (the table shows medians)")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  command
      ->add_option("--bytes-per-run", parsed->bytes_per_run,
                   "Copy and convert rows use the first tensors up to this many bytes (2G, "
                   "512M, ...): bounds memory, which the memcpy floor doubles")
      ->check(CLI::Validator(
          [](const std::string& text) {
            return testbed::parse_byte_size(text) ? std::string()
                                                  : "not a size like 1G or 512M: " + text;
          },
          "SIZE"))
      ->capture_default_str();
  command
      ->add_option("--threads", parsed->options.threads,
                   "Loader copy workers, and the threads of the baseline rows and the fill floors")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  command->add_flag("--cold", parsed->options.cold,
                    "Add cold rows: the file is dropped from the page cache "
                    "(POSIX_FADV_DONTNEED) before each of their runs");
  command->add_flag("--json", parsed->options.json,
                    "Print one JSON object: path, format, tensors, the selection, machine, "
                    "date, load average, floors and modes (name, kind, cold, median seconds, "
                    "samples, bytes, ratios), notes");
  return {command, [parsed](std::ostream& out, std::ostream& err) {
            BenchOptions options = parsed->options;
            options.bytes_per_run = *testbed::parse_byte_size(parsed->bytes_per_run);
            options.progress = !options.json && progress_wanted(err);
            return run_bench(options, out, err);
          }};
}

}  // namespace weightmap::cli
