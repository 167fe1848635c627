// The rows of `weightmap bench` and the ratios between them, computed in one place for the
// table and the JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weightmap::cli {

enum class RowKind {
  open,             // floor: index-only open
  read,             // floor: read() into a new buffer
  read_prefaulted,  // floor: read() into a pre-faulted buffer
  memcpy,           // floor: memcpy between pre-faulted buffers
  fill,             // floor: writing the f32 output bytes into fresh memory
  mapped,           // mode: every tensor mapped
  copy,             // mode: the selection copied
  convert,          // mode: the selection converted to f32
};

// "open", "read", "read_prefaulted", "memcpy", "fill", "mapped", "copy", "convert".
std::string_view row_kind_name(RowKind kind);
bool is_floor(RowKind kind);

struct BenchRow {
  std::string name;
  RowKind kind = RowKind::copy;
  std::function<double()> run;   // one run's seconds
  bool cold = false;             // the file is dropped from the page cache before each run
  bool baseline = false;         // loads as stable-diffusion.cpp's loader does
  bool huge_pages = false;       // fills 2 MiB pages (the fill floor, the hugepage conversion)
  bool callers_buffers = false;  // destinations faulted in before the runs
  std::uint64_t bytes = 0;       // bytes it moves, for GB/s
  std::vector<double> seconds;
};

double median(std::vector<double> values);

// A row's median and its ratios to the rows it is compared with; absent where no such row
// ran. Bandwidth ratios are above 1 when the row is faster, time ratios below 1.
struct RowFigures {
  double seconds = 0;
  std::optional<double> time_to_open;  // mapped rows: times the index-only open
  // Copy and convert rows: bytes read per second against the read() floor of the same
  // temperature and, warm only, the pre-faulted read() and memcpy floors.
  std::optional<double> bandwidth_to_read_new;
  std::optional<double> bandwidth_to_read_prefaulted;
  std::optional<double> bandwidth_to_memcpy;
  // Copy and convert rows: time against the baseline row of the same kind and temperature.
  std::optional<double> time_to_baseline;
  // Conversions into fresh buffers: time against the fill floor with the same page size.
  std::optional<double> time_to_fill;
};

// `copy_bytes` are the selection's tensor bytes, `range_bytes` the file range the read() and
// memcpy floors move. One entry per row, in `rows` order.
std::vector<RowFigures> figures_of(const std::vector<BenchRow>& rows, std::uint64_t copy_bytes,
                                   std::uint64_t range_bytes);

}  // namespace weightmap::cli
