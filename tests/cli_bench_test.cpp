// `weightmap bench`: every mode row and every floor, with --runs 1 on a tiny model; --cold and
// the JSON fields (structure and values that follow from the model, never timings).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "cli/bench_command.hpp"
#include "cli/cli.hpp"
#include "support/json_dom.hpp"
#include "support/sample_file.hpp"
#include "support/shell_command.hpp"
#include "support/temp_dir.hpp"

namespace weightmap::cli {
namespace {

using testing::TempDir;

TEST(CliBench, PrintsEveryModeAndFloorWithOneRun) {
  const TempDir dir;
  const std::string path = test::write_sample(dir / "cli_bench.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 1;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  const std::string text = out.str();
  for (const char* row : {"\nindex-only open ",
                          "\nread() into a new buffer ",
                          "\nread() into a pre-faulted buffer ",
                          "\nmemcpy (pre-faulted) ",
                          "\nmmap ",
                          "\nmmap + populate ",
                          "\npread copy ",
                          "\npread copy, caller's buffers ",
                          "\nO_DIRECT copy ",
                          "\nconvert to f32 ",
                          "\nconvert to f32, caller's buffers ",
                          "\nconvert to f32, hugepage buffers ",
                          "\nbaseline copy ",
                          "\nbaseline convert to f32 ",
                          "\nfresh buffer fill ",
                          "\nfresh buffer fill, huge pages ",
                          "x the time of index-only open",
                          "x read() new, ",
                          "x baseline, ",
                          "x fill\n",
                          "x fill (huge)\n",
                          "environment: convert ",
                          "1 runs (medians)",
                          "\nmachine: ",
                          " cores, ",
                          "load average "}) {
    EXPECT_NE(text.find(row), std::string::npos) << row << "\n" << text;
  }
  EXPECT_EQ(text.find(", cold"), std::string::npos) << "cold rows only with --cold\n" << text;
  EXPECT_EQ(err.str(), "");  // no progress bar when not asked (stderr is not a terminal)
}

TEST(CliBench, ColdRowsAreLabelledInTheTable) {
  const TempDir dir;
  const std::string path = test::write_sample(dir / "cli_bench_cold.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 1;
  options.cold = true;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  const std::string text = out.str();
  for (const char* row :
       {"\nread() into a new buffer, cold ", "\nmmap + populate, cold ", "\npread copy, cold ",
        "\nO_DIRECT copy, cold ", "\nbaseline copy, cold ", "\nconvert to f32, cold ",
        "\nbaseline convert to f32, cold ", "x read() new (cold) | time ",
        "; cold rows: the file dropped from the page cache before each run (7 drops, "}) {
    EXPECT_NE(text.find(row), std::string::npos) << row << "\n" << text;
  }
  // The rows that stay warm have no cold twin.
  for (const char* row :
       {"pre-faulted buffer, cold", "caller's buffers, cold", "memcpy (pre-faulted), cold",
        "hugepage buffers, cold", "fill, cold", "open, cold", "\nmmap, cold"}) {
    EXPECT_EQ(text.find(row), std::string::npos) << row << "\n" << text;
  }
}

// A row of the JSON's "floors" or "modes", with every field the bench writes.
struct JsonRow {
  std::string kind;
  bool cold = false;
  bool baseline = false;
  double seconds = 0;
  std::size_t samples = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, double> ratios;  // the ratio fields present
};

std::map<std::string, JsonRow> json_rows(const test::Json& json, const char* array) {
  std::map<std::string, JsonRow> rows;
  simdjson::dom::array items;
  EXPECT_EQ(json.root[array].get(items), simdjson::SUCCESS) << array;
  for (simdjson::dom::element item : items) {
    std::string_view name;
    std::string_view kind;
    JsonRow row;
    EXPECT_EQ(item["name"].get(name), simdjson::SUCCESS);
    EXPECT_EQ(item["kind"].get(kind), simdjson::SUCCESS);
    row.kind = kind;
    EXPECT_EQ(item["cold"].get(row.cold), simdjson::SUCCESS);
    EXPECT_EQ(item["baseline"].get(row.baseline), simdjson::SUCCESS);
    EXPECT_EQ(item["seconds"].get(row.seconds), simdjson::SUCCESS);
    EXPECT_EQ(item["bytes"].get(row.bytes), simdjson::SUCCESS);
    simdjson::dom::array samples;
    EXPECT_EQ(item["samples"].get(samples), simdjson::SUCCESS);
    row.samples = samples.size();
    for (const char* ratio : {"ratio_to_open", "ratio_to_read_new", "ratio_to_read_prefaulted",
                              "ratio_to_memcpy", "time_vs_baseline", "time_vs_fill"}) {
      double value = 0;
      if (item[ratio].get(value) == simdjson::SUCCESS) row.ratios[ratio] = value;
    }
    EXPECT_TRUE(rows.emplace(std::string(name), row).second) << "two rows named " << name;
  }
  return rows;
}

TEST(CliBench, JsonRecordsTheMachineTheBaselineAndTheFillFloor) {
  const TempDir dir;
  const std::string path = test::write_sample(dir / "cli_bench_json.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 2;
  options.json = true;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  const auto json = test::parse_json(out.str());

  EXPECT_EQ(json->root["cold"].get_bool().value_unsafe(), false);
  std::string_view cpu;
  EXPECT_EQ(json->root["machine"]["cpu"].get(cpu), simdjson::SUCCESS);
  EXPECT_GE(test::json_u64(*json, "threads"), 1u);
  std::uint64_t cores = 0;
  std::uint64_t memory = 0;
  EXPECT_EQ(json->root["machine"]["cores"].get(cores), simdjson::SUCCESS);
  EXPECT_EQ(json->root["machine"]["memory_bytes"].get(memory), simdjson::SUCCESS);
  EXPECT_GE(cores, 1u);
  EXPECT_GT(memory, std::uint64_t{1} << 20);
  std::string_view thp;
  EXPECT_EQ(json->root["machine"]["transparent_huge_pages"].get(thp), simdjson::SUCCESS);
  const std::string date = test::json_text(*json, "date");
  EXPECT_TRUE(std::regex_match(date, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << date;
  for (const char* when : {"start", "end"}) {
    simdjson::dom::array loads;
    ASSERT_EQ(json->root["load_average"][when].get(loads), simdjson::SUCCESS) << when;
    EXPECT_EQ(loads.size(), 3u);
    for (simdjson::dom::element load : loads) EXPECT_GE(load.get_double().value_unsafe(), 0.0);
  }
  EXPECT_EQ(test::json_u64(*json, "cold_drops"), 0u);

  // The sample is all f16: the fill floors write the selection's bytes twice over.
  const std::uint64_t selected = test::json_u64(*json, "selected_bytes");
  EXPECT_EQ(test::json_u64(*json, "fill_bytes"), 2 * selected);
  const auto floors = json_rows(*json, "floors");
  const auto modes = json_rows(*json, "modes");
  ASSERT_EQ(floors.count("fresh buffer fill"), 1u);
  ASSERT_EQ(floors.count("fresh buffer fill, huge pages"), 1u);
  EXPECT_EQ(floors.at("fresh buffer fill").kind, "fill");
  EXPECT_EQ(floors.at("fresh buffer fill").bytes, 2 * selected);
  EXPECT_EQ(floors.at("fresh buffer fill, huge pages").bytes, 2 * selected);

  for (const auto& [name, row] : floors) {
    EXPECT_FALSE(row.cold) << name;
    EXPECT_FALSE(row.baseline) << name;
    EXPECT_EQ(row.samples, 2u) << name;
  }
  std::size_t baselines = 0;
  for (const auto& [name, row] : modes) {
    EXPECT_FALSE(row.cold) << name;
    EXPECT_EQ(row.samples, 2u) << name;
    baselines += row.baseline ? 1 : 0;
    if (row.kind == "mapped") {
      EXPECT_EQ(row.ratios.count("ratio_to_open"), 1u) << name;
      EXPECT_EQ(row.ratios.count("time_vs_baseline"), 0u) << name;
      continue;
    }
    ASSERT_TRUE(row.kind == "copy" || row.kind == "convert") << name << ": " << row.kind;
    EXPECT_EQ(row.bytes, selected) << name;
    for (const char* ratio :
         {"ratio_to_read_new", "ratio_to_read_prefaulted", "ratio_to_memcpy", "time_vs_baseline"}) {
      EXPECT_EQ(row.ratios.count(ratio), 1u) << name << " " << ratio;
    }
    // Each row against the baseline of its kind: its median over the baseline's.
    const JsonRow& baseline =
        modes.at(row.kind == "copy" ? "baseline copy" : "baseline convert to f32");
    EXPECT_TRUE(baseline.baseline);
    EXPECT_NEAR(row.ratios.at("time_vs_baseline"), row.seconds / baseline.seconds,
                1e-3 * row.seconds / baseline.seconds + 1e-4)
        << name;
  }
  EXPECT_EQ(baselines, 2u);
  EXPECT_DOUBLE_EQ(modes.at("baseline copy").ratios.at("time_vs_baseline"), 1.0);
  // Conversions into fresh memory are set against the fill floor of their page size.
  const auto fill_ratio = [&](const char* mode, const char* floor) {
    return modes.at(mode).seconds / floors.at(floor).seconds;
  };
  for (const auto& [mode, floor] : std::map<std::string, std::string>{
           {"convert to f32", "fresh buffer fill"},
           {"baseline convert to f32", "fresh buffer fill"},
           {"convert to f32, hugepage buffers", "fresh buffer fill, huge pages"}}) {
    ASSERT_EQ(modes.at(mode).ratios.count("time_vs_fill"), 1u) << mode;
    const double expected = fill_ratio(mode.c_str(), floor.c_str());
    EXPECT_NEAR(modes.at(mode).ratios.at("time_vs_fill"), expected, 1e-3 * expected + 1e-4) << mode;
  }
  EXPECT_EQ(modes.at("convert to f32, caller's buffers").ratios.count("time_vs_fill"), 0u);
  EXPECT_EQ(modes.at("pread copy").ratios.count("time_vs_fill"), 0u);
}

TEST(CliBench, JsonColdRowsDropTheFileBeforeEachRun) {
  const TempDir dir;
  const std::string path = test::write_sample(dir / "cli_bench_json_cold.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 2;
  options.json = true;
  options.cold = true;
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  const auto json = test::parse_json(out.str());
  EXPECT_EQ(json->root["cold"].get_bool().value_unsafe(), true);

  const auto floors = json_rows(*json, "floors");
  const auto modes = json_rows(*json, "modes");
  std::size_t cold_rows = 0;
  for (const auto* rows : {&floors, &modes}) {
    for (const auto& [name, row] : *rows) {
      EXPECT_EQ(row.cold, name.ends_with(", cold")) << name;
      if (!row.cold) continue;
      ++cold_rows;
      EXPECT_EQ(row.samples, 2u) << name;
      // A cold twin of a warm row: same kind, same bytes.
      const std::string warm = name.substr(0, name.size() - std::string(", cold").size());
      ASSERT_EQ(rows->count(warm), 1u) << name;
      const JsonRow& twin = rows->at(warm);
      EXPECT_EQ(twin.kind, row.kind) << name;
      EXPECT_EQ(twin.bytes, row.bytes) << name;
      EXPECT_EQ(twin.baseline, row.baseline) << name;
      if (row.kind == "copy" || row.kind == "convert") {
        // Against the cold read() floor and the cold baseline; the warm-only floors are left out.
        EXPECT_EQ(row.ratios.count("ratio_to_read_new"), 1u) << name;
        EXPECT_EQ(row.ratios.count("ratio_to_read_prefaulted"), 0u) << name;
        EXPECT_EQ(row.ratios.count("ratio_to_memcpy"), 0u) << name;
        const JsonRow& baseline =
            modes.at(row.kind == "copy" ? "baseline copy, cold" : "baseline convert to f32, cold");
        const double expected = row.seconds / baseline.seconds;
        EXPECT_NEAR(row.ratios.at("time_vs_baseline"), expected, 1e-3 * expected + 1e-4) << name;
      }
    }
  }
  EXPECT_EQ(cold_rows, 7u);
  // One drop before every cold row's run.
  EXPECT_EQ(test::json_u64(*json, "cold_drops"), 2u * cold_rows);
  // Where the drop left pages behind (tmpfs), a note says so; where it worked, none does.
  const std::uint64_t kept = test::json_u64(*json, "cold_resident_after_drop_bytes");
  const std::uint64_t tensor_bytes = test::json_u64(*json, "tensor_bytes");
  bool kept_note = false;
  simdjson::dom::array notes;
  ASSERT_EQ(json->root["notes"].get(notes), simdjson::SUCCESS);
  for (simdjson::dom::element note : notes) {
    kept_note =
        kept_note ||
        std::string(note.get_string().value_unsafe()).starts_with("the page cache kept up to ");
  }
  EXPECT_EQ(kept_note, kept > tensor_bytes / 100) << kept << " of " << tensor_bytes;
}

TEST(CliBench, ColdIsACommandLineFlag) {
  const TempDir dir;
  const std::string path = test::write_sample(dir / "cli_bench_flag.safetensors");
  std::ostringstream out;
  std::ostringstream err;
  const char* argv[] = {"weightmap", "bench", path.c_str(), "--runs", "1", "--cold", "--json"};
  ASSERT_EQ(run_cli(7, argv, out, err), kExitOk) << err.str();
  const auto json = test::parse_json(out.str());
  EXPECT_EQ(json->root["cold"].get_bool().value_unsafe(), true);
  EXPECT_EQ(test::json_u64(*json, "cold_drops"), 7u);
}

// scripts/bench-table.py, which makes the README's tables from this JSON.
std::string bench_table_script() {
  return (std::filesystem::path(WEIGHTMAP_TEST_SCRIPTS_DIR).parent_path().parent_path() /
          "scripts" / "bench-table.py")
      .string();
}

TEST(CliBench, TableScriptMakesMarkdownFromTheJson) {
  const TempDir dir;
  const std::string safetensors = test::write_sample(dir / "cli_bench_table.safetensors");
  const std::string gguf =
      test::write_sample(dir / "cli_bench_table.gguf", {.format = FileFormat::gguf});

  // Two benches in one file (one object per line) and a third in another.
  const std::string both = dir / "two.json";
  const std::string one = dir / "one.json";
  {
    std::ofstream two_out(both);
    std::ofstream one_out(one);
    for (const auto& [path, cold, out] :
         {std::tuple{safetensors, true, &two_out}, std::tuple{gguf, false, &two_out},
          std::tuple{safetensors, false, &one_out}}) {
      BenchOptions options;
      options.path = path;
      options.runs = 1;
      options.json = true;
      options.cold = cold;
      std::ostringstream json;
      std::ostringstream err;
      ASSERT_EQ(run_bench(options, json, err), kExitOk) << err.str();
      *out << json.str();
    }
  }
  std::string failure;
  const auto table =
      test::run_command(fmt::format("{} {} {} {}", test::shell_quote(WEIGHTMAP_TEST_PYTHON),
                                    test::shell_quote(bench_table_script()),
                                    test::shell_quote(both), test::shell_quote(one)),
                        failure);
  ASSERT_TRUE(table) << failure;
  for (const char* line : {
           "Machine: ",
           " KiB (two.json): `cli_bench_table.safetensors`, 20 tensors;",
           " KiB (one.json): `cli_bench_table.safetensors`, 20 tensors;",
           "\n- gguf 1023.1 KiB: `cli_bench_table.gguf`, 20 tensors;",
           "\n| mode, warm | ",
           "|\n|---|---|---|---|\n",
           "\n| mode, cold | ",
           "\n| baseline copy, cold | ",
           "\n| read() into a new buffer, cold | ",
           "\n| fresh buffer fill, huge pages | ",
           "x base, ",
           "x fill, ",
           "; cold rows: 7 drops, ",
       }) {
    EXPECT_NE(table->find(line), std::string::npos) << line << "\n" << *table;
  }
  // Rows a bench did not run show a dash: the warm-only benches have no cold rows.
  const std::regex header(R"(\n\| floor \| safetensors [^|]+ \(two\.json\) \| gguf [^|(]+ \| )"
                          R"(safetensors [^|]+ \(one\.json\) \|\n)");
  EXPECT_TRUE(std::regex_search(*table, header)) << *table;
  const std::regex cold_row(R"(\n\| pread copy, cold \| [0-9.]+ m?s, [^|]+\| - \| - \|\n)");
  EXPECT_TRUE(std::regex_search(*table, cold_row)) << *table;

  std::ofstream(dir / "not-bench.json") << "{\"path\": \"x\"}\n";
  EXPECT_FALSE(test::run_command(fmt::format("{} {} {}", test::shell_quote(WEIGHTMAP_TEST_PYTHON),
                                             test::shell_quote(bench_table_script()),
                                             test::shell_quote(dir / "not-bench.json")),
                                 failure));
  EXPECT_NE(failure.find("not weightmap bench --json output"), std::string::npos) << failure;
}

TEST(CliBench, BoundsTheCopiedBytes) {
  const TempDir dir;
  const std::string path = test::write_sample(dir / "cli_bench_bound.safetensors");
  BenchOptions options;
  options.path = path;
  options.runs = 1;
  options.bytes_per_run = 1;  // at least one tensor is still copied
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(run_bench(options, out, err), kExitOk) << err.str();
  EXPECT_NE(out.str().find("use the first 1 tensors in file order"), std::string::npos)
      << out.str();
}

TEST(CliBench, ExitCodes) {
  std::ostringstream out;
  std::ostringstream err;
  const char* no_path[] = {"weightmap", "bench"};
  EXPECT_EQ(run_cli(2, no_path, out, err), kExitUsage);
  const char* zero_runs[] = {"weightmap", "bench", "x.safetensors", "--runs", "0"};
  EXPECT_EQ(run_cli(5, zero_runs, out, err), kExitUsage);

  const TempDir dir;
  BenchOptions options;
  options.path = dir / "cli_bench_missing.safetensors";
  options.runs = 1;
  std::ostringstream bench_err;
  EXPECT_EQ(run_bench(options, out, bench_err), kExitError);
  EXPECT_TRUE(bench_err.str().starts_with("weightmap: " + options.path + ": ")) << bench_err.str();
}

}  // namespace
}  // namespace weightmap::cli
