// What weights off 32 bytes cost ggml's CPU kernels. Files from Hugging Face's safetensors
// writer put tensors on 8-byte boundaries; bind() maps them where they are. Each row computes
// the same graph over the same mapped weights placed both ways, alternating within every
// iteration so that drift on a shared machine hits both alike, and reports both times and
// their ratio (off 32 / aligned; above 1 means unaligned is slower):
//   - mul_mat of a 4096x4096 f16 weight mapped at 8 bytes past a 32-byte boundary and at a
//     32-byte boundary, by a batch of 1 and of 64 activations (2 threads);
//   - examples/tiny_transformer's forward pass (about 200 MiB of f16 weights, 32 tokens, 2
//     threads) over a file in Hugging Face's layout (every tensor 8 or more bytes off 32) and
//     over its `weightmap realign` copy (every tensor 64-byte aligned), both bound mapped.
//
//   build/bench/weightmap_bench --benchmark_filter=Alignment --benchmark_repetitions=7
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <vector>

#include "support/temp_dir.hpp"
#include "testbed/sample_model.hpp"
#include "tiny_transformer/tiny_transformer.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/realign.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// This process's files (about 460 MiB), removed at exit.
const fs::path& fixture_dir() {
  static const weightmap::testing::TempDir dir("weightmap-align-bench");
  return dir.path();
}

double seconds_of(const std::function<void()>& work) {
  const auto start = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr std::int64_t kRows = 4096;
constexpr std::int64_t kColumns = 4096;

// A file holding the f16 weight at byte `offset` (zeros before it).
std::string weight_file(std::size_t offset) {
  const auto path = (fixture_dir() / fmt::format("f16-4096x4096-at-{}.bin", offset)).string();
  if (fs::exists(path)) return path;
  std::ofstream out(path, std::ios::binary);
  std::vector<std::byte> chunk(std::size_t{1} << 20);
  std::fill_n(chunk.begin(), offset, std::byte{0});
  out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(offset));
  const std::uint64_t bytes = kRows * kColumns * 2;
  for (std::uint64_t done = 0; done < bytes; done += chunk.size()) {
    weightmap::testbed::fill_sample_bytes(1, weightmap::DType::F16, 0, done, chunk);
    out.write(reinterpret_cast<const char*>(chunk.data()),
              static_cast<std::streamsize>(chunk.size()));
  }
  return path;
}

// mul_mat of the mapped weight by `batch` activations, as an engine runs it on the CPU.
class MappedMulMat {
 public:
  MappedMulMat(std::size_t offset, std::int64_t batch)
      : mapping_(weightmap::MappedFile::open(weight_file(offset), weightmap::Access::read_only)) {
    auto* base = const_cast<std::byte*>(mapping_->span(0, mapping_->size()).data());
    buffer_ = ggml_backend_cpu_buffer_from_ptr(base, mapping_->size());
    ggml_init_params weights{ggml_tensor_overhead(), nullptr, true};
    weights_ = ggml_init(weights);
    ggml_tensor* w = ggml_new_tensor_2d(weights_, GGML_TYPE_F16, kColumns, kRows);
    ggml_backend_tensor_alloc(buffer_, w, base + offset);
    ggml_init_params compute{std::size_t{16} << 20, nullptr, false};
    compute_ = ggml_init(compute);
    ggml_tensor* x = ggml_new_tensor_2d(compute_, GGML_TYPE_F32, kColumns, batch);
    auto* values = static_cast<float*>(x->data);
    for (std::int64_t i = 0; i < ggml_nelements(x); ++i) {
      values[i] = static_cast<float>(i % 17) / 17.0f - 0.5f;
    }
    graph_ = ggml_new_graph(compute_);
    ggml_build_forward_expand(graph_, ggml_mul_mat(compute_, w, x));
    backend_ = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(backend_, 2);
    run();  // faults the mapping in
  }
  ~MappedMulMat() {
    ggml_backend_free(backend_);
    ggml_free(compute_);
    ggml_free(weights_);
    ggml_backend_buffer_free(buffer_);
  }
  MappedMulMat(const MappedMulMat&) = delete;
  MappedMulMat& operator=(const MappedMulMat&) = delete;

  void run() { ggml_backend_graph_compute(backend_, graph_); }

 private:
  std::shared_ptr<weightmap::MappedFile> mapping_;
  ggml_backend_buffer_t buffer_ = nullptr;
  ggml_context* weights_ = nullptr;
  ggml_context* compute_ = nullptr;
  ggml_cgraph* graph_ = nullptr;
  ggml_backend_t backend_ = nullptr;
};

void report(benchmark::State& state, double off32, double aligned) {
  const auto n = static_cast<double>(state.iterations());
  state.counters["off32_ms"] = off32 / n * 1e3;
  state.counters["aligned_ms"] = aligned / n * 1e3;
  state.counters["ratio"] = off32 / aligned;
}

void BM_AlignmentMulMatF16(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  MappedMulMat off32(8, batch);
  MappedMulMat aligned(32, batch);
  double off32_seconds = 0;
  double aligned_seconds = 0;
  for (auto _ : state) {
    off32_seconds += seconds_of([&] { off32.run(); });
    aligned_seconds += seconds_of([&] { aligned.run(); });
  }
  report(state, off32_seconds, aligned_seconds);
}
BENCHMARK(BM_AlignmentMulMatF16)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

ggml_backend_dev_t cpu(std::string_view) {
  return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

void BM_AlignmentTinyTransformer(benchmark::State& state) {
  using weightmap::examples::TinyTransformer;
  const weightmap::examples::TinyTransformerConfig config{1024, 16, 4096, 8, 32};
  const auto hf = (fixture_dir() / "tiny-transformer-hf.safetensors").string();
  const auto realigned = (fixture_dir() / "tiny-transformer-realigned.safetensors").string();
  if (!fs::exists(realigned)) {
    weightmap::examples::write_tiny_transformer(
        hf, config, 1, weightmap::examples::TinyTransformerLayout::hugging_face);
    weightmap::realign(hf, realigned);
  }
  TinyTransformer off32(hf, config, cpu);
  TinyTransformer aligned(realigned, config, cpu);
  // Every f16/f32 weight mapped in both (the q8_0 output projection is quantized, so loaded).
  if (off32.report().load.mapped_tensors != aligned.report().load.mapped_tensors) {
    state.SkipWithError("the two files did not map the same tensors");
    return;
  }
  const auto input = weightmap::examples::tiny_transformer_input(config);
  off32.forward(input);  // faults both mappings in
  aligned.forward(input);
  double off32_seconds = 0;
  double aligned_seconds = 0;
  for (auto _ : state) {
    off32_seconds += seconds_of([&] { benchmark::DoNotOptimize(off32.forward(input)); });
    aligned_seconds += seconds_of([&] { benchmark::DoNotOptimize(aligned.forward(input)); });
  }
  state.counters["mapped_tensors"] = static_cast<double>(off32.report().load.mapped_tensors);
  report(state, off32_seconds, aligned_seconds);
}
BENCHMARK(BM_AlignmentTinyTransformer)->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace
