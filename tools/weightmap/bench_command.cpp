#include "weightmap/bench_command.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>

#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/human_bytes.hpp"
#include "weightmap/load.hpp"
#include "weightmap/load_command.hpp"
#include "weightmap/model_json.hpp"
#include "weightmap/model_notes.hpp"
#include "weightmap/progress_bar.hpp"
#include "weightmap/sample_model.hpp"

namespace weightmap::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& work) {
  const auto start = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Rows that take microseconds (the index-only open, mmap) are run this many times per run and
// give their median: one sample of a few hundred microseconds is mostly scheduler noise.
constexpr int kQuickRepeats = 15;

// "0.1421 s", or "0.142 ms" below 10 ms (the open and mapped rows), 10 characters wide.
std::string duration_text(double seconds) {
  return seconds < 0.01 ? fmt::format("{:>7.3f} ms", seconds * 1e3)
                        : fmt::format("{:>8.4f} s", seconds);
}

double median_of_repeats(const std::function<double()>& work) {
  std::vector<double> seconds;
  for (int i = 0; i < kQuickRepeats; ++i) seconds.push_back(work());
  return median(std::move(seconds));
}

class Fd {
 public:
  explicit Fd(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw Error(ErrorCode::io, std::strerror(errno), {.file = path});
  }
  ~Fd() { ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// pread() until `out` is full: the floor every copy path is compared with.
void read_fully(const std::string& path, std::uint64_t offset, std::span<std::byte> out) {
  const Fd fd(path);
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw Error(ErrorCode::io, n < 0 ? std::strerror(errno) : "file ended early",
                  {.file = path, .offset = offset + done});
    }
    done += static_cast<std::size_t>(n);
  }
}

// The bytes a run copies: the first tensors in file order, up to the per-run bound.
struct Selection {
  std::vector<std::string> names;
  std::uint64_t offset = 0;  // the contiguous file range they span
  std::uint64_t range_bytes = 0;
  std::uint64_t tensor_bytes = 0;
  std::size_t convertible = 0;  // tensors convert() can turn into f32 (and are not f32)
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
  }
  s.range_bytes = end - s.offset;
  return s;
}

struct Row {
  std::string name;
  std::function<double()> run;  // one run's seconds
  std::vector<double> seconds;
};

std::string gbps(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? fmt::format("{:.2f}", static_cast<double>(bytes) / seconds / 1e9) : "-";
}

}  // namespace

int run_bench(const BenchOptions& options, std::ostream& out, std::ostream& err) {
  try {
    const Model model = open_model(options.path);
    print_model_notes(model, "bench", err);
    if (model.files().size() != 1) {
      err << fmt::format("weightmap bench: {} holds {} files; bench takes one model file\n",
                         options.path, model.files().size());
      return kExitUsage;
    }
    const std::string& file = model.files()[0].path;
    const Selection selection = select_tensors(model, options.bytes_per_run);
    std::uint64_t model_bytes = 0;
    for (const TensorInfo& t : model.tensors()) model_bytes += t.nbytes;

    // Warm the page cache once (untimed): every row measures the warm case.
    const Residency cold = page_cache_residency(model);
    {
      std::vector<std::byte> chunk(std::size_t{8} << 20);
      for (std::uint64_t at = 0; at < model.files()[0].size; at += chunk.size()) {
        const std::uint64_t n = std::min<std::uint64_t>(chunk.size(), model.files()[0].size - at);
        read_fully(file, at, std::span(chunk).first(static_cast<std::size_t>(n)));
      }
    }

    // Requests: every tensor for the mapped rows, the selection for copies and conversion.
    // With `into`, each request names its destination in that buffer (the caller's memory,
    // already faulted in, as an engine's reused or pre-allocated buffers are); a null buffer
    // only sizes it.
    const auto requests = [&](bool all, std::optional<DType> dtype,
                              std::vector<std::byte>* into = nullptr,
                              std::size_t* into_bytes = nullptr) {
      std::vector<TensorRequest> out_requests;
      const std::set<std::string> chosen(selection.names.begin(), selection.names.end());
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

    std::set<std::string> notes;
    const auto load_options = [&](bool mmap, bool direct, bool populate, bool hugepage = false) {
      LoadOptions o;
      o.use_mmap = mmap;
      o.direct_io = direct;
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

    // The memcpy floor's buffers are pre-faulted once: it measures memory bandwidth alone.
    std::vector<std::byte> memcpy_src(range);
    const std::span<std::byte> memcpy_dst = std::span(callers_buffer).first(range);
    read_fully(file, selection.offset, memcpy_src);

    std::vector<Row> floors = {
        {"index-only open",
         [&] {
           return median_of_repeats([&] {
             // As in the mapped rows: opening is timed, freeing is not.
             std::optional<Model> opened;
             const auto start = Clock::now();
             opened = open_model(options.path);
             return std::chrono::duration<double>(Clock::now() - start).count();
           });
         },
         {}},
        {"read() into a new buffer",
         [&] {
           return seconds_of([&] {
             // A fresh allocation, as a loader's buffers are: its page faults count.
             const std::unique_ptr<std::byte[]> buffer(new std::byte[range]);
             read_fully(file, selection.offset, std::span(buffer.get(), range));
           });
         },
         {}},
        {"read() into a pre-faulted buffer",
         [&] { return seconds_of([&] { read_fully(file, selection.offset, memcpy_dst); }); },
         {}},
        {"memcpy (pre-faulted)",
         [&] {
           return seconds_of([&] { std::memcpy(memcpy_dst.data(), memcpy_src.data(), range); });
         },
         {}},
    };
    std::vector<Row> modes = {
        {"mmap",
         [&] {
           return median_of_repeats(
               [&] { return timed_load(all_mapped, load_options(true, false, false)); });
         },
         {}},
        {"mmap + populate",
         [&] { return timed_load(all_mapped, load_options(true, false, true)); },
         {}},
        {"pread copy", [&] { return timed_load(selected, load_options(false, false, false)); }, {}},
        {"pread copy, caller's buffers",
         [&] { return timed_load(selected_into, load_options(false, false, false)); },
         {}},
        {"O_DIRECT copy",
         [&] { return timed_load(selected, load_options(false, true, false)); },
         {}},
    };
    const bool can_convert_rows = selection.convertible > 0;
    if (can_convert_rows) {
      modes.push_back({"convert to f32",
                       [&] { return timed_load(selected_f32, load_options(true, false, false)); },
                       {}});
      modes.push_back(
          {"convert to f32, hugepage buffers",
           [&] { return timed_load(selected_f32, load_options(true, false, false, true)); },
           {}});
      modes.push_back(
          {"convert to f32, caller's buffers",
           [&] { return timed_load(selected_f32_into, load_options(true, false, false)); },
           {}});
    }

    const unsigned runs = std::max(options.runs, 1u);
    ProgressBar bar(err, options.progress, "bench", runs * (floors.size() + modes.size()),
                    ProgressBar::Unit::steps);
    std::uint64_t step = 0;
    // Rows take turns within each run, so a noisy moment hits all of them alike.
    for (unsigned run = 0; run < runs; ++run) {
      for (auto* rows : {&floors, &modes}) {
        for (Row& row : *rows) {
          bar.update(step++, row.name);
          row.seconds.push_back(row.run());
        }
      }
    }
    bar.finish();

    const double open_s = median(floors[0].seconds);
    const double read_s = median(floors[1].seconds);
    const double read_warm_s = median(floors[2].seconds);
    const double memcpy_s = median(floors[3].seconds);
    const std::uint64_t copy_bytes = selection.tensor_bytes;

    if (options.json) {
      // Bandwidth ratios as in the table: the floors' bytes are the selection's file range.
      const auto ratio = [&](double seconds, double floor_seconds) {
        return (static_cast<double>(copy_bytes) / seconds) /
               (static_cast<double>(selection.range_bytes) / floor_seconds);
      };
      std::vector<std::string> floor_rows;
      for (const Row& row : floors) {
        floor_rows.push_back(fmt::format("{{\"name\": {}, \"seconds\": {:.9f}, \"bytes\": {}}}",
                                         json_string(row.name), median(row.seconds),
                                         &row == &floors[0] ? 0 : selection.range_bytes));
      }
      std::vector<std::string> mode_rows;
      for (const Row& row : modes) {
        const double s = median(row.seconds);
        if (row.name.starts_with("mmap")) {
          mode_rows.push_back(fmt::format(
              "{{\"name\": {}, \"seconds\": {:.9f}, \"bytes\": {}, \"ratio_to_open\": {:.4f}}}",
              json_string(row.name), s, model_bytes, open_s > 0 ? s / open_s : 0));
        } else {
          mode_rows.push_back(fmt::format(
              "{{\"name\": {}, \"seconds\": {:.9f}, \"bytes\": {}, \"ratio_to_read_new\": "
              "{:.4f}, \"ratio_to_read_prefaulted\": {:.4f}, \"ratio_to_memcpy\": {:.4f}}}",
              json_string(row.name), s, copy_bytes, ratio(s, read_s), ratio(s, read_warm_s),
              ratio(s, memcpy_s)));
        }
      }
      std::vector<std::string> note_texts;
      for (const std::string& note : notes) note_texts.push_back(json_string(note));
      out << fmt::format(
          "{{\"path\": {}, \"format\": \"{}\", \"tensors\": {}, \"tensor_bytes\": {}, "
          "\"convert\": {}, \"threads\": {}, \"runs\": {}, \"resident_before_bytes\": {}, "
          "\"selected_tensors\": {}, \"selected_bytes\": {}, \"selected_range_bytes\": {}, "
          "\"floors\": [{}], \"modes\": [{}], \"notes\": [{}]}}\n",
          json_string(file), file_format_name(model.files()[0].format), model.tensors().size(),
          model_bytes, json_string(convert_implementation()), options.threads, runs,
          cold.resident_bytes, selection.names.size(), copy_bytes, selection.range_bytes,
          fmt::join(floor_rows, ", "), fmt::join(mode_rows, ", "), fmt::join(note_texts, ", "));
      return kExitOk;
    }

    out << fmt::format("weightmap bench {}: {} tensors, {} of tensor data, {}\n", file,
                       model.tensors().size(), human_bytes(model_bytes),
                       file_format_name(model.files()[0].format));
    out << fmt::format(
        "environment: convert {}, {} copy workers, {} runs (medians), page cache warm ({} of {} "
        "resident before the warm-up read), WEIGHTMAP_MMAP_FLAGS not applied\n",
        convert_implementation(), options.threads, runs, human_bytes(cold.resident_bytes),
        human_bytes(cold.tensor_bytes));
    out << fmt::format(
        "copy rows and the read()/memcpy floors use the first {} tensors in file order ({}); "
        "mmap rows map all {}\n\n",
        selection.names.size(), human_bytes(copy_bytes), model.tensors().size());

    out << fmt::format("{:<32} {:>10} {:>11} {:>7}\n", "floor", "median", "bytes", "GB/s");
    out << fmt::format("{:<32} {}\n", floors[0].name, duration_text(open_s));
    out << fmt::format("{:<32} {:>8.4f} s {:>11} {:>7}\n", floors[1].name, read_s,
                       human_bytes(selection.range_bytes), gbps(selection.range_bytes, read_s));
    out << fmt::format("{:<32} {:>8.4f} s {:>11} {:>7}\n", floors[2].name, read_warm_s,
                       human_bytes(selection.range_bytes),
                       gbps(selection.range_bytes, read_warm_s));
    out << fmt::format("{:<32} {:>8.4f} s {:>11} {:>7}\n\n", floors[3].name, memcpy_s,
                       human_bytes(selection.range_bytes), gbps(selection.range_bytes, memcpy_s));

    out << fmt::format("{:<32} {:>10} {:>11} {:>7}  {}\n", "mode", "median", "bytes", "GB/s",
                       "ratio to the floors (bandwidth; >1 is faster)");
    for (const Row& row : modes) {
      const double s = median(row.seconds);
      const bool mapped = row.name.starts_with("mmap");
      if (mapped) {
        out << fmt::format("{:<32} {} {:>11} {:>7}  {:.2f}x the time of index-only open\n",
                           row.name, duration_text(s), human_bytes(model_bytes), "-",
                           open_s > 0 ? s / open_s : 0);
        continue;
      }
      // Bandwidth ratios: bytes read from the file per second against the floors' (>1 faster).
      const double bw = static_cast<double>(copy_bytes) / s;
      const double read_bw = static_cast<double>(selection.range_bytes) / read_s;
      const double read_warm_bw = static_cast<double>(selection.range_bytes) / read_warm_s;
      const double memcpy_bw = static_cast<double>(selection.range_bytes) / memcpy_s;
      out << fmt::format(
          "{:<32} {:>8.4f} s {:>11} {:>7}  {:.2f}x read() new, {:.2f}x read() pre-faulted, "
          "{:.2f}x memcpy\n",
          row.name, s, human_bytes(copy_bytes), gbps(copy_bytes, s), bw / read_bw,
          bw / read_warm_bw, bw / memcpy_bw);
    }
    if (!can_convert_rows) {
      out << fmt::format("{:<32} skipped: no tensor in the selection converts to f32\n",
                         "convert to f32");
    }
    for (const std::string& note : notes) out << "note: " << note << '\n';
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
      "O_DIRECT copy, convert to f32), warm cache, and print medians with ratios to floors "
      "measured in the same run (index-only open, one plain read(), memcpy).");
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
            return parse_byte_size(text) ? std::string() : "not a size like 1G or 512M: " + text;
          },
          "SIZE"))
      ->capture_default_str();
  command->add_option("--threads", parsed->options.threads, "Loader copy workers")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  command->add_flag("--json", parsed->options.json,
                    "Print one JSON object: path, format, tensors, the selection, floors and "
                    "modes (name, median seconds, bytes, ratios), notes");
  return {command, [parsed](std::ostream& out, std::ostream& err) {
            BenchOptions options = parsed->options;
            options.bytes_per_run = *parse_byte_size(parsed->bytes_per_run);
            options.progress = !options.json && progress_wanted(err);
            return run_bench(options, out, err);
          }};
}

}  // namespace weightmap::cli
