// cold_start_bench: time to the first output of a ggml engine (examples/tiny_transformer,
// scaled to a few GiB of f16 weights) on a cold page cache, four ways (--modes picks some, and
// "cat + warm + prefetch" adds the prefetcher's cost on a warm cache):
//   - mapped: bind maps the weights, the first graph run faults them in, in graph order;
//   - mapped + prefetch: the same with a weightmap::Prefetcher started right after bind, in
//     the order the graph reads the weights, told which layer the graph reaches as it runs;
//   - copied: bind reads every weight into memory first, then the graph runs;
//   - the floor: `cat` of the file (read() in 8 MiB steps) plus a warm mapped run.
// The file is dropped from the page cache (fsync + POSIX_FADV_DONTNEED) before each cold run,
// and the modes rotate from run to run so drift on a shared machine hits each alike.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "tiny_transformer/tiny_transformer.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/model.hpp"
#include "weightmap/model_page_cache.hpp"
#include "weightmap/prefetch.hpp"

namespace {

using weightmap::examples::TinyTransformer;
using weightmap::examples::TinyTransformerConfig;
using Clock = std::chrono::steady_clock;

double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

ggml_backend_dev_t cpu(std::string_view) {
  return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

weightmap::ggml::BindOptions bind_options(bool use_mmap) {
  weightmap::ggml::BindOptions out;
  out.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
  out.load.cache_from_env = false;
  return out;
}

// Drops the file from the page cache; returns the share of its bytes still cached after.
double drop_from_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  ::fsync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  const weightmap::Residency residency =
      weightmap::page_cache_residency(weightmap::open_model(path));
  return residency.tensor_bytes == 0 ? 0.0
                                     : static_cast<double>(residency.resident_bytes) /
                                           static_cast<double>(residency.tensor_bytes);
}

double cat_file(const std::string& path) {
  const auto start = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  std::vector<char> buffer(std::size_t{8} << 20);
  while (::read(fd, buffer.data(), buffer.size()) > 0) {
  }
  ::close(fd);
  return seconds_since(start);
}

struct Outcome {
  double ready_seconds = 0;  // bind returned
  double seconds = 0;        // the first output
  std::vector<float> output;
  std::optional<weightmap::PrefetchProgress> prefetched;  // at the first output
};

struct PrefetchSettings {
  bool enabled = false;
  bool follow_engine = true;  // give the graph's order and say which layer it reaches
  weightmap::PrefetchOptions options;
};

Outcome first_output(const std::string& path, const TinyTransformerConfig& config,
                     const std::vector<float>& input, bool use_mmap,
                     const PrefetchSettings& prefetch, int threads) {
  const auto start = Clock::now();
  TinyTransformer engine(path, config, cpu, bind_options(use_mmap));
  Outcome out;
  out.ready_seconds = seconds_since(start);
  if (!prefetch.enabled) {
    out.output = engine.forward(input, threads);
  } else {
    weightmap::PrefetchOptions options = prefetch.options;
    if (prefetch.follow_engine) options.order = engine.weight_order();
    weightmap::Prefetcher prefetcher(engine.binding().mapped_tensors(), options);
    if (prefetch.follow_engine) {
      out.output = engine.forward(input, threads,
                                  [&](std::string_view weight) { prefetcher.reached(weight); });
    } else {
      out.output = engine.forward(input, threads);
    }
    out.prefetched = prefetcher.progress();
  }
  out.seconds = seconds_since(start);
  return out;
}

std::string load_average() {
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) != 3) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f}", load[0], load[1], load[2]);
}

double median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time to the first output of a ggml engine on a cold page cache"};
  std::string dir = "out/cold-start";
  int runs = 3;
  int threads = 2;
  std::uint64_t distance_mib = 0;
  std::size_t step_mib = 4;
  bool verbose = false;
  PrefetchSettings prefetch;
  std::vector<std::string> modes = {"mapped", "mapped + prefetch", "copied", "cat + warm"};
  TinyTransformerConfig config{2048, 16, 8192, 22, 32};  // about 2.1 GiB of f16 weights
  app.add_option("dir", dir, "Where to write the model")->capture_default_str();
  app.add_option("--runs", runs, "Cold runs per mode")->check(CLI::Range(1, 100));
  app.add_option("--threads", threads, "Graph threads")->check(CLI::Range(1, 64));
  app.add_option("--layers", config.n_layers, "Transformer layers (96 MiB each at d_model 2048)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--tokens", config.n_tokens,
                 "Tokens per run: few make the run wait on the disk, many on the CPU")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--prefetch-distance-mib", distance_mib,
                 "PrefetchOptions::distance_bytes in MiB (0: no bound)")
      ->capture_default_str();
  app.add_option("--prefetch-step-mib", step_mib, "PrefetchOptions::step_bytes in MiB")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_flag("--verbose", verbose, "Print every run");
  app.add_flag("!--no-follow", prefetch.follow_engine,
               "Prefetch in file order without telling the prefetcher where the graph is");
  app.add_option("--modes", modes,
                 "Modes to run, in this order in the first run (\"cat + warm\" is needed for the "
                 "floor; \"cat + warm + prefetch\" times the prefetcher on a warm cache)")
      ->delimiter(',')
      ->check(CLI::IsMember(
          {"mapped", "mapped + prefetch", "copied", "cat + warm", "cat + warm + prefetch"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  prefetch.options.distance_bytes = distance_mib << 20;
  prefetch.options.step_bytes = step_mib << 20;

  try {
    std::filesystem::create_directories(dir);
    const std::string path =
        fmt::format("{}/cold-start-{}-layers.safetensors", dir, config.n_layers);
    if (!std::filesystem::exists(path)) weightmap::examples::write_tiny_transformer(path, config);
    const auto input = weightmap::examples::tiny_transformer_input(config);
    fmt::print(
        "model {} ({:.2f} GiB), {} tokens, {} cold runs per mode, {} graph threads; prefetch "
        "step {} MiB, distance {}; load average {}\n",
        path, static_cast<double>(std::filesystem::file_size(path)) / (1 << 30), config.n_tokens,
        runs, threads, step_mib,
        distance_mib == 0 ? "unbounded" : fmt::format("{} MiB", distance_mib), load_average());

    std::map<std::string, std::vector<double>> times;
    std::vector<double> cat_times;
    std::map<std::string, std::vector<double>> warm_times;
    std::optional<std::vector<float>> reference;
    bool same = true;
    double worst_left_cached = 0;
    for (int run = 0; run < runs; ++run) {
      for (std::size_t k = 0; k < modes.size(); ++k) {
        const std::string& mode = modes[(k + static_cast<std::size_t>(run)) % modes.size()];
        worst_left_cached = std::max(worst_left_cached, drop_from_cache(path));
        Outcome outcome;
        if (mode.starts_with("cat + warm")) {
          const double cat = cat_file(path);
          PrefetchSettings settings = prefetch;
          settings.enabled = mode == "cat + warm + prefetch";
          outcome = first_output(path, config, input, true, settings, threads);
          if (mode == "cat + warm") cat_times.push_back(cat);
          warm_times[mode].push_back(outcome.seconds);
          outcome.seconds += cat;
        } else {
          PrefetchSettings settings = prefetch;
          settings.enabled = mode == "mapped + prefetch";
          outcome = first_output(path, config, input, mode != "copied", settings, threads);
        }
        if (verbose) {
          fmt::print("  run {} {:<21} {:7.3f} s (ready at {:.3f} s)", run, mode, outcome.seconds,
                     outcome.ready_seconds);
          if (outcome.prefetched) {
            fmt::print(
                "  (prefetcher at the first output: {:.0f} MiB populated, {:.0f} MiB "
                "passed over of {:.0f} MiB{})",
                mib(outcome.prefetched->populated_bytes), mib(outcome.prefetched->skipped_bytes),
                mib(outcome.prefetched->total_bytes),
                outcome.prefetched->finished ? ", finished" : "");
          }
          fmt::print("\n");
        }
        times[mode].push_back(outcome.seconds);
        if (!reference) reference = outcome.output;
        same = same && outcome.output == *reference;
      }
    }
    const double floor = median(times["cat + warm"]);
    fmt::print("floor: cat {:.3f} s + warm mapped run {:.3f} s (medians)\n", median(cat_times),
               median(warm_times["cat + warm"]));
    if (warm_times.count("cat + warm + prefetch") != 0) {
      fmt::print("warm mapped run with the prefetcher: {:.3f} s (median)\n",
                 median(warm_times["cat + warm + prefetch"]));
    }
    for (const std::string& mode : modes) {
      const double t = median(times[mode]);
      fmt::print("  {:<21} {:7.3f} s  {:5.2f}x the floor\n", mode, t, t / floor);
    }
    fmt::print(
        "at most {:.1f}% of the file stayed cached after a drop; outputs {}; load average {}\n",
        100 * worst_left_cached, same ? "bit-identical" : "DIFFER", load_average());
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "cold_start_bench: {}\n", e.what());
    return 1;
  }
}
