// LoRA on a mapped model: what applying costs in private memory, and how undo (dropping the
// copy-on-write pages) compares with binding the model again with copies, in the same run.
//
// An f16 model (WEIGHTMAP_LORA_BENCH_BYTES, default 1 GiB, written once per run into a fresh
// folder under TMPDIR) and a rank-16 LoRA on its 2-D tensors adding up to about
// WEIGHTMAP_LORA_BENCH_PERCENT (default 10) percent of its bytes. Each repetition loads the model
// mapped copy-on-write, applies, undoes, and loads it again in the read mode; counters give
// private memory (Private_Dirty of /proc/self/smaps_rollup) before, after apply and after undo, the
// bound the issue sets (patched bytes plus a page per patched tensor boundary), and the times.
//
//   build/bench/weightmap_bench --benchmark_filter=Lora --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true   (one line)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "support/temp_dir.hpp"
#include "testbed/byte_size.hpp"
#include "testbed/process_memory.hpp"
#include "testbed/sample_model.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/lora.hpp"

namespace {

namespace fs = std::filesystem;
using weightmap::DType;

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr) return fallback;
  const auto parsed = weightmap::testbed::parse_byte_size(text);
  return parsed.value_or(fallback);
}

std::uint64_t private_dirty_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::stringstream text;
  text << in.rdbuf();
  return weightmap::testbed::proc_kib_field(text.str(), "Private_Dirty").value_or(0);
}

// Private_Dirty of the mappings of one file only (/proc/self/smaps), apart from the heap.
std::uint64_t mapping_private_dirty_bytes(const std::string& path) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  std::uint64_t total = 0;
  while (std::getline(in, line)) {
    const bool header = !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
                        line.find(':') > line.find('-');
    if (header) {
      inside = line.ends_with(" " + path);
    } else if (inside && line.starts_with("Private_Dirty:")) {
      total += weightmap::testbed::proc_kib_field(line, "Private_Dirty").value_or(0);
    }
  }
  return total;
}

struct Files {
  std::string model;
  std::string lora;
  std::uint64_t model_bytes = 0;
  std::uint64_t patched_bytes = 0;
  std::size_t patched_tensors = 0;
};

void write_lora(const std::string& path, const std::vector<weightmap::TensorToWrite>& targets) {
  constexpr std::uint64_t kRank = 16;
  std::vector<weightmap::TensorToWrite> tensors;
  for (const auto& target : targets) {
    const std::string module = target.name.substr(0, target.name.size() - 7);  // ".weight"
    tensors.push_back({module + ".lora_A.weight", DType::F16, {kRank, target.shape[1]}});
    tensors.push_back({module + ".lora_B.weight", DType::F16, {target.shape[0], kRank}});
  }
  std::mt19937 random(5);
  std::uniform_real_distribution<float> uniform(-0.05f, 0.05f);
  weightmap::write_safetensors(path, tensors,
                               [&](std::size_t, std::uint64_t, std::span<std::byte> out) {
                                 std::vector<float> values(out.size() / 2);
                                 for (auto& value : values) value = uniform(random);
                                 weightmap::convert(DType::F32, std::as_bytes(std::span(values)),
                                                    DType::F16, out, values.size());
                               });
}

const Files& files() {
  static const Files made = [] {
    Files out;
    // Written into a folder of this run's own, removed at exit: a file a concurrent run may
    // still be writing is never read.
    static const weightmap::testing::TempDir temp("weightmap-lora-bench");
    const fs::path& dir = temp.path();
    const std::uint64_t bytes = env_or("WEIGHTMAP_LORA_BENCH_BYTES", std::uint64_t{1} << 30);
    const std::uint64_t percent = env_or("WEIGHTMAP_LORA_BENCH_PERCENT", 10);
    out.model = (dir / fmt::format("weightmap-lora-bench-{}.safetensors", bytes)).string();
    out.lora =
        (dir / fmt::format("weightmap-lora-bench-{}-{}.lora.safetensors", bytes, percent)).string();
    const auto tensors = weightmap::testbed::plan_sample_tensors(bytes, 400, DType::F16);
    weightmap::testbed::write_sample_file(out.model, tensors, {.seed = 1});
    std::vector<std::uint64_t> sizes;
    for (const auto& tensor : tensors) {
      std::uint64_t elements = 1;
      for (const auto dim : tensor.shape) elements *= dim;
      sizes.push_back(elements * 2);
      out.model_bytes += elements * 2;
    }
    // 2-D tensors of 1 MiB and more, smallest first (many tensors: many page boundaries),
    // until k% of the model's bytes.
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].shape.size() == 2 && tensors[i].name.ends_with(".weight") &&
          sizes[i] >= (std::uint64_t{1} << 20)) {
        order.push_back(i);
      }
    }
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return sizes[a] < sizes[b]; });
    std::vector<weightmap::TensorToWrite> targets;
    const std::uint64_t goal = out.model_bytes / 100 * percent;
    for (const std::size_t i : order) {
      if (out.patched_bytes + sizes[i] > goal + goal / 10) continue;  // at most 10% over
      targets.push_back(tensors[i]);
      out.patched_bytes += sizes[i];
      if (out.patched_bytes >= goal) break;
    }
    out.patched_tensors = targets.size();
    write_lora(out.lora, targets);
    // A page still dirty in the page cache counts as Private_Dirty in smaps when this process
    // maps it: on a model just written, the first runs showed 24 MiB of "private" growth that
    // undo could not take back. Write it out first.
    for (const std::string& path : {out.model, out.lora}) {
      const int fd = ::open(path.c_str(), O_RDONLY);
      if (fd >= 0) {
        (void)::fsync(fd);
        ::close(fd);
      }
    }
    return out;
  }();
  return made;
}

double seconds_of(const std::function<void()>& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

constexpr double kMiB = 1024.0 * 1024.0;

void BM_LoraApplyUndoVsReload(benchmark::State& state) {
  const Files& f = files();
  const weightmap::Model base = weightmap::open_model(f.model);
  auto lora = std::make_shared<const weightmap::LoraFile>(weightmap::read_lora(f.lora));
  const weightmap::LoraUse use{
      lora, weightmap::match_lora(*lora, base, weightmap::plain_lora_name_rules(), true), 1.0f};
  auto requests = weightmap::lora_requests(base, std::span(&use, 1));
  for (auto& request : requests) request.device.alignment = 2;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  for (auto _ : state) {
    weightmap::LoadedModel loaded = weightmap::load(base, requests);
    const std::uint64_t before = private_dirty_bytes();
    const std::uint64_t mapping_before = mapping_private_dirty_bytes(f.model);
    weightmap::LoraPatcher patcher(base, loaded);
    const double apply_s = seconds_of([&] { patcher.apply(use); });
    const std::uint64_t applied = private_dirty_bytes();
    const std::uint64_t mapping_applied = mapping_private_dirty_bytes(f.model);
    const double undo_s = seconds_of([&] { patcher.undo_all(); });
    const std::uint64_t undone = private_dirty_bytes();
    const std::uint64_t mapping_undone = mapping_private_dirty_bytes(f.model);
    weightmap::LoadOptions copies;
    copies.mode = weightmap::LoadMode::read;
    const double reload_s = seconds_of([&] {
      const weightmap::LoadedModel copied = weightmap::load(base, requests, copies);
      benchmark::DoNotOptimize(copied.tensors.data());
    });
    const double growth = static_cast<double>(applied) - static_cast<double>(before);
    const double bound = static_cast<double>(f.patched_bytes + 2 * page * f.patched_tensors);
    state.counters["model_MiB"] = static_cast<double>(f.model_bytes) / kMiB;
    state.counters["patched_pct"] =
        100.0 * static_cast<double>(f.patched_bytes) / static_cast<double>(f.model_bytes);
    state.counters["patched_tensors"] = static_cast<double>(f.patched_tensors);
    state.counters["private_growth_MiB"] = growth / kMiB;
    state.counters["bound_MiB"] = bound / kMiB;
    state.counters["growth_over_bound"] = growth / bound;
    state.counters["after_undo_delta_MiB"] =
        (static_cast<double>(undone) - static_cast<double>(before)) / kMiB;
    state.counters["mapping_growth_MiB"] =
        (static_cast<double>(mapping_applied) - static_cast<double>(mapping_before)) / kMiB;
    state.counters["mapping_after_undo_MiB"] =
        (static_cast<double>(mapping_undone) - static_cast<double>(mapping_before)) / kMiB;
    state.counters["apply_s"] = apply_s;
    state.counters["undo_s"] = undo_s;
    state.counters["reload_copies_s"] = reload_s;
    state.counters["reload_over_undo"] = reload_s / undo_s;
  }
}
BENCHMARK(BM_LoraApplyUndoVsReload)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
