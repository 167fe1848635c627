// Time-to-index: opening a model (header read, parse and validation, no tensor data) for
// 1,000 and 10,000 tensors, against floors measured in the same run: simdjson's bare parse of
// the same safetensors header, and a pread of the GGUF header bytes.
//
//   build/bench/weightmap_bench --benchmark_repetitions=5
//
// After Google Benchmark's own table it prints ns per tensor and the ratios (medians when
// repetitions are on).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "testbed/sample_model.hpp"
#include "weightmap/model.hpp"

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kSizes[] = {1000, 10000};

// The run's own folder, removed at exit.
const fs::path& fixture_dir() {
  static const weightmap::testing::TempDir dir("weightmap-bench");
  return dir.path();
}

// A model of `n` tiny tensors (the sample generator's index-bound ones): opening it is all
// index, no tensor data.
std::string model_path(std::size_t n, weightmap::FileFormat format) {
  const bool gguf = format == weightmap::FileFormat::gguf;
  const auto path =
      (fixture_dir() / fmt::format("model-{}.{}", n, gguf ? "gguf" : "safetensors")).string();
  if (!fs::exists(path)) {
    weightmap::testbed::write_sample_file(path, weightmap::testbed::plan_index_bound_tensors(n),
                                          {.format = format});
  }
  return path;
}

std::string safetensors_path(std::size_t n) {
  return model_path(n, weightmap::FileFormat::safetensors);
}
std::string gguf_path(std::size_t n) { return model_path(n, weightmap::FileFormat::gguf); }

// The JSON header of a safetensors file, as the file stores it.
std::string read_safetensors_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), sizeof length);
  std::string header(static_cast<std::size_t>(length), '\0');
  in.read(header.data(), static_cast<std::streamsize>(length));
  if (!in) throw std::runtime_error("cannot read the header of " + path);
  return header;
}

void BM_SimdjsonBareParseSafetensorsHeader(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const simdjson::padded_string header(read_safetensors_header(safetensors_path(n)));
  simdjson::dom::parser parser;
  for (auto _ : state) {
    simdjson::dom::element doc;
    if (parser.parse(header).get(doc) != simdjson::SUCCESS) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(doc);
  }
}

void BM_OpenSafetensors(benchmark::State& state) {
  const auto path = safetensors_path(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    auto model = weightmap::open_model(path);
    benchmark::DoNotOptimize(model.tensors().data());
  }
}

void BM_PreadGgufHeader(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto path = gguf_path(n);
  const auto model = weightmap::open_model(path);
  std::vector<char> buffer(static_cast<std::size_t>(model.files()[0].data_offset));
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    const auto got = ::pread(fd, buffer.data(), buffer.size(), 0);
    ::close(fd);
    if (got != static_cast<ssize_t>(buffer.size())) state.SkipWithError("short read");
    benchmark::DoNotOptimize(buffer.data());
  }
}

void BM_OpenGguf(benchmark::State& state) {
  const auto path = gguf_path(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    auto model = weightmap::open_model(path);
    benchmark::DoNotOptimize(model.tensors().data());
  }
}

void register_all() {
  for (const auto n : kSizes) {
    const auto arg = static_cast<std::int64_t>(n);
    benchmark::RegisterBenchmark("SimdjsonBareParseSafetensorsHeader",
                                 BM_SimdjsonBareParseSafetensorsHeader)
        ->Arg(arg)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("OpenSafetensors", BM_OpenSafetensors)
        ->Arg(arg)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("PreadGgufHeader", BM_PreadGgufHeader)
        ->Arg(arg)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("OpenGguf", BM_OpenGguf)->Arg(arg)->Unit(benchmark::kMicrosecond);
  }
}

// Keeps each benchmark's time per iteration (the median when repetitions are on) so the
// ratios can be printed after the run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.error_occurred) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (!median && !single) continue;
      const double ns =
          run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit) * 1e9;
      nanoseconds_[run.run_name.function_name + "/" + run.run_name.args] = ns;
    }
  }

  void print_ratios() const {
    fmt::print(
        "\nns per tensor (median of repetitions), ratio to the floor measured in this run\n");
    fmt::print("{:>8} {:>14} {:>14} {:>8} {:>14} {:>14} {:>8} {:>10}\n", "tensors", "st open",
               "simdjson", "ratio", "gguf open", "gguf pread", "ratio", "vs simdjson");
    for (const auto n : kSizes) {
      const auto per = [&](const std::string& name) {
        const auto it = nanoseconds_.find(fmt::format("{}/{}", name, n));
        return it == nanoseconds_.end() ? 0.0 : it->second / static_cast<double>(n);
      };
      const double st = per("OpenSafetensors");
      const double json = per("SimdjsonBareParseSafetensorsHeader");
      const double gguf = per("OpenGguf");
      const double pread = per("PreadGgufHeader");
      fmt::print("{:>8} {:>14.1f} {:>14.1f} {:>8.2f} {:>14.1f} {:>14.1f} {:>8.2f} {:>10.2f}\n", n,
                 st, json, json > 0 ? st / json : 0.0, gguf, pread, pread > 0 ? gguf / pread : 0.0,
                 json > 0 ? gguf / json : 0.0);
    }
  }

 private:
  std::map<std::string, double> nanoseconds_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  fs::remove_all(fixture_dir());
  return 0;
}
