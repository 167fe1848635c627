#include "cli/bench_rows.hpp"

#include <algorithm>

namespace weightmap::cli {

std::string_view row_kind_name(RowKind kind) {
  switch (kind) {
    case RowKind::open: return "open";
    case RowKind::read: return "read";
    case RowKind::read_prefaulted: return "read_prefaulted";
    case RowKind::memcpy: return "memcpy";
    case RowKind::fill: return "fill";
    case RowKind::mapped: return "mapped";
    case RowKind::copy: return "copy";
    case RowKind::convert: return "convert";
  }
  return "?";
}

bool is_floor(RowKind kind) {
  return kind == RowKind::open || kind == RowKind::read || kind == RowKind::read_prefaulted ||
         kind == RowKind::memcpy || kind == RowKind::fill;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::vector<RowFigures> figures_of(const std::vector<BenchRow>& rows, std::uint64_t copy_bytes,
                                   std::uint64_t range_bytes) {
  const auto median_of = [&](auto&& matches) -> std::optional<double> {
    const auto row = std::find_if(rows.begin(), rows.end(), matches);
    if (row == rows.end() || row->seconds.empty()) return std::nullopt;
    return median(row->seconds);
  };
  const auto floor_median = [&](RowKind kind, bool cold, bool huge_pages = false) {
    return median_of([&](const BenchRow& r) {
      return r.kind == kind && r.cold == cold && r.huge_pages == huge_pages;
    });
  };
  const auto baseline_median = [&](RowKind kind, bool cold) {
    return median_of(
        [&](const BenchRow& r) { return r.baseline && r.kind == kind && r.cold == cold; });
  };
  // Bandwidth: the row's bytes per second against the floor's (the floors move the whole
  // file range of the selection, gaps included).
  const auto bandwidth = [&](double seconds, std::optional<double> floor_seconds) {
    std::optional<double> ratio;
    if (floor_seconds && *floor_seconds > 0 && seconds > 0 && range_bytes > 0) {
      ratio = (static_cast<double>(copy_bytes) / seconds) /
              (static_cast<double>(range_bytes) / *floor_seconds);
    }
    return ratio;
  };
  const auto time_ratio = [](double seconds, std::optional<double> floor_seconds) {
    std::optional<double> ratio;
    if (floor_seconds && *floor_seconds > 0) ratio = seconds / *floor_seconds;
    return ratio;
  };

  std::vector<RowFigures> figures;
  for (const BenchRow& row : rows) {
    RowFigures f;
    f.seconds = median(row.seconds);
    if (row.kind == RowKind::mapped) {
      f.time_to_open = time_ratio(f.seconds, floor_median(RowKind::open, false));
    } else if (row.kind == RowKind::copy || row.kind == RowKind::convert) {
      f.bandwidth_to_read_new = bandwidth(f.seconds, floor_median(RowKind::read, row.cold));
      if (!row.cold) {
        f.bandwidth_to_read_prefaulted =
            bandwidth(f.seconds, floor_median(RowKind::read_prefaulted, false));
        f.bandwidth_to_memcpy = bandwidth(f.seconds, floor_median(RowKind::memcpy, false));
      }
      f.time_to_baseline = time_ratio(f.seconds, baseline_median(row.kind, row.cold));
      if (row.kind == RowKind::convert && !row.callers_buffers) {
        f.time_to_fill = time_ratio(f.seconds, floor_median(RowKind::fill, false, row.huge_pages));
      }
    }
    figures.push_back(f);
  }
  return figures;
}

}  // namespace weightmap::cli
