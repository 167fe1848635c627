#include "cli/bench_report.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ostream>

#include "cli/human_bytes.hpp"
#include "cli/model_json.hpp"

namespace weightmap::cli {
namespace {

// "0.1421 s", or "0.142 ms" below 10 ms (the open and mapped rows), 10 characters wide.
std::string duration_text(double seconds) {
  return seconds < 0.01 ? fmt::format("{:>7.3f} ms", seconds * 1e3)
                        : fmt::format("{:>8.4f} s", seconds);
}

std::string gbps(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? fmt::format("{:.2f}", static_cast<double>(bytes) / seconds / 1e9) : "-";
}

std::string load_text(const std::array<double, 3>& loads) {
  if (loads[0] < 0) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f}", loads[0], loads[1], loads[2]);
}

std::string json_number(double value) { return fmt::format("{:.4f}", value); }

std::string json_loads(const std::array<double, 3>& loads) {
  if (loads[0] < 0) return "null";
  return fmt::format("[{:.2f}, {:.2f}, {:.2f}]", loads[0], loads[1], loads[2]);
}

// The ratios of a copy or convert row, in words.
std::string ratio_text(const BenchRow& row, const RowFigures& f) {
  std::vector<std::string> bandwidth;
  if (f.bandwidth_to_read_new) {
    bandwidth.push_back(
        fmt::format("{:.2f}x read() new{}", *f.bandwidth_to_read_new, row.cold ? " (cold)" : ""));
  }
  if (f.bandwidth_to_read_prefaulted) {
    bandwidth.push_back(fmt::format("{:.2f}x read() pre-faulted", *f.bandwidth_to_read_prefaulted));
  }
  if (f.bandwidth_to_memcpy) {
    bandwidth.push_back(fmt::format("{:.2f}x memcpy", *f.bandwidth_to_memcpy));
  }
  std::vector<std::string> time;
  if (f.time_to_baseline) time.push_back(fmt::format("{:.2f}x baseline", *f.time_to_baseline));
  if (f.time_to_fill) {
    time.push_back(fmt::format("{:.2f}x fill{}", *f.time_to_fill, row.huge_pages ? " (huge)" : ""));
  }
  std::string text = fmt::format("{}", fmt::join(bandwidth, ", "));
  if (!time.empty()) text += fmt::format(" | time {}", fmt::join(time, ", "));
  return text;
}

}  // namespace

void print_bench_text(const BenchResult& r, std::ostream& out) {
  const std::vector<RowFigures> figures =
      figures_of(r.rows, r.selected_bytes, r.selected_range_bytes);
  out << fmt::format("weightmap bench {}: {} tensors, {} of tensor data, {}\n", r.file, r.tensors,
                     human_bytes(r.tensor_bytes), r.format);
  out << fmt::format(
      "environment: convert {}, {} copy workers, {} runs (medians), page cache warm ({} of {} "
      "resident before the warm-up read), WEIGHTMAP_MMAP_FLAGS not applied{}\n",
      r.convert, r.threads, r.runs, human_bytes(r.resident_before_bytes),
      human_bytes(r.resident_tensor_bytes),
      r.cold ? fmt::format("; cold rows: the file dropped from the page cache before each "
                           "run ({} drops, at most {} left after one)",
                           r.cold_drops, human_bytes(r.cold_kept_bytes))
             : std::string());
  out << fmt::format(
      "machine: {}, {} cores, {} RAM, Linux {}, transparent huge pages {}; started {}, load "
      "average {} (end {})\n",
      r.machine.cpu.empty() ? "unknown CPU" : r.machine.cpu, r.machine.cores,
      human_bytes(r.machine.memory_bytes), r.machine.kernel.empty() ? "?" : r.machine.kernel,
      r.machine.transparent_huge_pages.empty() ? "unknown" : r.machine.transparent_huge_pages,
      r.date, load_text(r.load_average_start), load_text(r.load_average_end));
  out << fmt::format(
      "copy rows and the read()/memcpy floors use the first {} tensors in file order ({}); "
      "mmap rows map all {}; the fill floors write their size as f32 ({})\n",
      r.selected_tensors, human_bytes(r.selected_bytes), r.tensors, human_bytes(r.fill_bytes));
  out << fmt::format(
      "baseline rows load as stable-diffusion.cpp's loader does: {} threads take whole tensors "
      "in file order, read() each into a reused staging buffer, then copy or convert it into "
      "its own new buffer\n\n",
      r.threads);

  out << fmt::format("{:<32} {:>10} {:>11} {:>7}\n", "floor", "median", "bytes", "GB/s");
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const BenchRow& row = r.rows[i];
    if (!is_floor(row.kind)) continue;
    if (row.kind == RowKind::open) {
      out << fmt::format("{:<32} {}\n", row.name, duration_text(figures[i].seconds));
      continue;
    }
    out << fmt::format("{:<32} {:>8.4f} s {:>11} {:>7}\n", row.name, figures[i].seconds,
                       human_bytes(row.bytes), gbps(row.bytes, figures[i].seconds));
  }
  out << '\n';

  out << fmt::format("{:<32} {:>10} {:>11} {:>7}  {}\n", "mode", "median", "bytes", "GB/s",
                     "bandwidth to the floors (>1 is faster) | time to the baseline and the "
                     "fill floor (<1 is faster)");
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const BenchRow& row = r.rows[i];
    const RowFigures& f = figures[i];
    if (is_floor(row.kind)) continue;
    if (row.kind == RowKind::mapped) {
      // Warm, a mapping reads nothing; cold, populating it reads the whole file.
      out << fmt::format("{:<32} {} {:>11} {:>7}  {:.2f}x the time of index-only open\n", row.name,
                         duration_text(f.seconds), human_bytes(row.bytes),
                         row.cold ? gbps(row.bytes, f.seconds) : "-", f.time_to_open.value_or(0));
      continue;
    }
    out << fmt::format("{:<32} {:>8.4f} s {:>11} {:>7}  {}\n", row.name, f.seconds,
                       human_bytes(row.bytes), gbps(row.bytes, f.seconds), ratio_text(row, f));
  }
  if (!r.convert_rows) {
    out << fmt::format("{:<32} skipped: no tensor in the selection converts to f32\n",
                       "convert to f32");
  }
  for (const std::string& note : r.notes) out << "note: " << note << '\n';
}

void print_bench_json(const BenchResult& r, std::ostream& out) {
  const std::vector<RowFigures> figures =
      figures_of(r.rows, r.selected_bytes, r.selected_range_bytes);
  std::vector<std::string> floor_rows;
  std::vector<std::string> mode_rows;
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const BenchRow& row = r.rows[i];
    const RowFigures& f = figures[i];
    std::string text = fmt::format(
        "{{\"name\": {}, \"kind\": \"{}\", \"cold\": {}, \"baseline\": {}, \"seconds\": {:.9f}, "
        "\"samples\": [{}], \"bytes\": {}",
        json_string(row.name), row_kind_name(row.kind), row.cold, row.baseline, f.seconds,
        fmt::join(row.seconds, ", "), row.bytes);
    const auto field = [&](const char* name, const std::optional<double>& value) {
      if (value) text += fmt::format(", \"{}\": {}", name, json_number(*value));
    };
    field("ratio_to_open", f.time_to_open);
    field("ratio_to_read_new", f.bandwidth_to_read_new);
    field("ratio_to_read_prefaulted", f.bandwidth_to_read_prefaulted);
    field("ratio_to_memcpy", f.bandwidth_to_memcpy);
    field("time_vs_baseline", f.time_to_baseline);
    field("time_vs_fill", f.time_to_fill);
    text += '}';
    (is_floor(row.kind) ? floor_rows : mode_rows).push_back(std::move(text));
  }
  std::vector<std::string> note_texts;
  for (const std::string& note : r.notes) note_texts.push_back(json_string(note));
  out << fmt::format(
      "{{\"path\": {}, \"format\": \"{}\", \"tensors\": {}, \"tensor_bytes\": {}, "
      "\"convert\": {}, \"threads\": {}, \"runs\": {}, \"cold\": {}, "
      "\"resident_before_bytes\": {}, \"selected_tensors\": {}, \"selected_bytes\": {}, "
      "\"selected_range_bytes\": {}, \"fill_bytes\": {}, "
      "\"machine\": {{\"cpu\": {}, \"cores\": {}, \"memory_bytes\": {}, \"kernel\": {}, "
      "\"transparent_huge_pages\": {}}}, \"date\": {}, "
      "\"load_average\": {{\"start\": {}, \"end\": {}}}, "
      "\"cold_drops\": {}, \"cold_resident_after_drop_bytes\": {}, "
      "\"floors\": [{}], \"modes\": [{}], \"notes\": [{}]}}\n",
      json_string(r.file), r.format, r.tensors, r.tensor_bytes, json_string(r.convert), r.threads,
      r.runs, r.cold, r.resident_before_bytes, r.selected_tensors, r.selected_bytes,
      r.selected_range_bytes, r.fill_bytes, json_string(r.machine.cpu), r.machine.cores,
      r.machine.memory_bytes, json_string(r.machine.kernel),
      json_string(r.machine.transparent_huge_pages), json_string(r.date),
      json_loads(r.load_average_start), json_loads(r.load_average_end), r.cold_drops,
      r.cold_kept_bytes, fmt::join(floor_rows, ", "), fmt::join(mode_rows, ", "),
      fmt::join(note_texts, ", "));
}

}  // namespace weightmap::cli
