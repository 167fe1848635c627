// Printing `weightmap bench`'s results: the table for people, one JSON object for scripts
// (scripts/bench-table.py turns it into the README's tables).
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "cli/bench_machine.hpp"
#include "cli/bench_rows.hpp"

namespace weightmap::cli {

struct BenchResult {
  std::string file;
  std::string format;  // "safetensors", "gguf"
  std::size_t tensors = 0;
  std::uint64_t tensor_bytes = 0;
  std::string convert;  // the conversion implementation
  unsigned threads = 0;
  unsigned runs = 0;
  bool cold = false;                        // --cold: the cold rows ran
  std::uint64_t resident_before_bytes = 0;  // of resident_tensor_bytes, before the warm-up
  std::uint64_t resident_tensor_bytes = 0;
  std::size_t selected_tensors = 0;
  std::uint64_t selected_bytes = 0;
  std::uint64_t selected_range_bytes = 0;
  std::uint64_t fill_bytes = 0;  // the selection's size as f32: what the fill floors write
  bool convert_rows = false;     // false when nothing in the selection converts to f32
  MachineFacts machine;
  std::string date;  // when the bench started, UTC
  std::array<double, 3> load_average_start{};
  std::array<double, 3> load_average_end{};
  unsigned cold_drops = 0;
  std::uint64_t cold_kept_bytes = 0;  // most the page cache still held after a drop
  std::vector<BenchRow> rows;
  std::vector<std::string> notes;
};

void print_bench_text(const BenchResult& result, std::ostream& out);
void print_bench_json(const BenchResult& result, std::ostream& out);

}  // namespace weightmap::cli
