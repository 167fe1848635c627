// tiny_transformer: writes a small transformer's weights with weightmap's writer (64-byte
// aligned, or laid out as Hugging Face's writer does), or takes any safetensors file holding
// them (--model), binds them to ggml tensors with weightmap::ggml (mapped, then copied), runs
// the graph both ways and checks that the outputs are bit-identical. With --bench, times the first
// graph run on freshly bound mapped weights against the same on copied weights (medians of --runs).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <vector>

#include "tiny_transformer/tiny_transformer.hpp"

namespace {

using weightmap::examples::TinyTransformer;
using weightmap::examples::TinyTransformerConfig;

ggml_backend_dev_t cpu(std::string_view) {
  return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

weightmap::ggml::BindOptions options(bool use_mmap, bool verbose) {
  weightmap::ggml::BindOptions out;
  out.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
  if (verbose) {
    out.load.log = [](weightmap::LogLevel level, std::string_view line) {
      if (level != weightmap::LogLevel::debug) fmt::print("  {}\n", line);
    };
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double bind = 0;
  double first_run = 0;
};

Timing timed_run(const std::string& path, const TinyTransformerConfig& config, bool use_mmap,
                 const std::vector<float>& input, std::vector<float>& output) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  TinyTransformer engine(path, config, cpu, options(use_mmap, false));
  const auto t1 = clock::now();
  output = engine.forward(input);
  const auto t2 = clock::now();
  return {std::chrono::duration<double>(t1 - t0).count(),
          std::chrono::duration<double>(t2 - t1).count()};
}

int bench(const std::string& path, const TinyTransformerConfig& config, int runs) {
  const auto input = weightmap::examples::tiny_transformer_input(config);
  std::vector<float> mapped_out;
  std::vector<float> copied_out;
  std::vector<double> mapped_bind, mapped_run, copied_bind, copied_run;
  for (int i = 0; i < runs; ++i) {
    // Alternate so drift on a shared machine hits both alike.
    const Timing m = timed_run(path, config, true, input, mapped_out);
    const Timing c = timed_run(path, config, false, input, copied_out);
    mapped_bind.push_back(m.bind);
    mapped_run.push_back(m.first_run);
    copied_bind.push_back(c.bind);
    copied_run.push_back(c.first_run);
  }
  const bool same = mapped_out == copied_out;
  fmt::print("model {} ({:.0f} MiB), medians of {} runs, page cache warm:\n", path,
             static_cast<double>(std::filesystem::file_size(path)) / (1 << 20), runs);
  fmt::print("  mapped: bind {:.4f} s, first graph run {:.4f} s, total {:.4f} s\n",
             median(mapped_bind), median(mapped_run), median(mapped_bind) + median(mapped_run));
  fmt::print("  copied: bind {:.4f} s, first graph run {:.4f} s, total {:.4f} s\n",
             median(copied_bind), median(copied_run), median(copied_bind) + median(copied_run));
  fmt::print(
      "  first run mapped/copied {:.2f}x; bind+first run mapped/copied {:.2f}x\n",
      median(mapped_run) / median(copied_run),
      (median(mapped_bind) + median(mapped_run)) / (median(copied_bind) + median(copied_run)));
  fmt::print("  outputs {}\n", same ? "bit-identical" : "DIFFER");
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A small ggml transformer whose weights weightmap maps from a safetensors file"};
  std::string dir = "out/tiny-transformer";
  std::string model;
  bool run_bench = false;
  bool hugging_face = false;
  int runs = 5;
  std::int64_t heads = 0;
  std::int64_t tokens = 0;
  app.add_option("dir", dir, "Where to write the model")->capture_default_str();
  app.add_option("--model", model,
                 "Run over this safetensors file instead of writing one: any layout (a "
                 "Hugging Face export, a realigned copy) holding the tiny transformer's tensors");
  app.add_flag("--hugging-face", hugging_face,
               "Write the model as Hugging Face's writer lays it out: tensors sorted by element "
               "size then name, on 8-byte boundaries (off 32)");
  app.add_flag("--bench", run_bench, "Time the first graph run, mapped vs copied weights");
  app.add_option("--runs", runs, "Runs per mode for --bench")->check(CLI::Range(1, 1000));
  app.add_option("--heads", heads, "Attention heads (default 4, 16 with --bench)");
  app.add_option("--tokens", tokens, "Tokens per forward pass (default 8, 32 with --bench)");
  CLI11_PARSE(app, argc, argv);

  try {
    // About 200 MiB of f16 weights for --bench: large enough that first-touch costs show.
    TinyTransformerConfig config =
        run_bench ? TinyTransformerConfig{1024, 16, 4096, 8, 32} : TinyTransformerConfig{};
    if (heads > 0) config.n_heads = heads;
    if (tokens > 0) config.n_tokens = tokens;
    std::string path = model;
    if (path.empty()) {
      std::filesystem::create_directories(dir);
      path = dir + (run_bench ? "/tiny-transformer-bench" : "/tiny-transformer") +
             (hugging_face ? "-hf" : "") + ".safetensors";
      weightmap::examples::write_tiny_transformer(
          path, config, 1,
          hugging_face ? weightmap::examples::TinyTransformerLayout::hugging_face
                       : weightmap::examples::TinyTransformerLayout::aligned64);
    } else {
      config =
          weightmap::examples::tiny_transformer_config_of(path, config.n_heads, config.n_tokens);
    }
    if (run_bench) return bench(path, config, runs);

    const auto input = weightmap::examples::tiny_transformer_input(config);
    std::vector<std::vector<float>> outputs;
    for (const bool use_mmap : {true, false}) {
      fmt::print("{} weights of {}:\n", use_mmap ? "mapped" : "copied", path);
      TinyTransformer engine(path, config, cpu, options(use_mmap, true));
      outputs.push_back(engine.forward(input));
      fmt::print("  output[0..4] = {:.6f} {:.6f} {:.6f} {:.6f}\n", outputs.back()[0],
                 outputs.back()[1], outputs.back()[2], outputs.back()[3]);
    }
    const bool same = outputs[0] == outputs[1];
    fmt::print("outputs {}\n", same ? "bit-identical" : "DIFFER");
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tiny_transformer: {}\n", e.what());
    return 1;
  }
}
