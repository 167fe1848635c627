// ggml_bind_bench: time-to-ready of a model bound to CPU ggml tensors with weightmap::ggml
// (open_model + no_alloc context + bind, mmap on) against the core's own time-to-ready
// (open_model + load of every tensor) in the same run, medians of --runs, page cache warm.
// Takes any safetensors or GGUF file (tensors of types ggml lacks, such as u8 or bool, are left
// out of the engine's tensors); writes the sample model (`weightmap sample`'s tensor mix, 1,000
// tensors, 4 GiB; with --hugging-face laid out as Hugging Face's writer does) when it is
// missing.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "testbed/byte_size.hpp"
#include "testbed/sample_model.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model.hpp"
#include "weightmap/writer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void write_sample(const std::string& path, std::uint64_t bytes, std::size_t count,
                  weightmap::DType dtype, bool hugging_face) {
  auto tensors = weightmap::testbed::plan_sample_tensors(bytes, count, dtype);
  if (hugging_face) tensors = weightmap::testbed::hugging_face_checkpoint(std::move(tensors));
  weightmap::testbed::write_sample_file(
      path, tensors,
      {.format = path.ends_with(".gguf") ? weightmap::FileFormat::gguf
                                         : weightmap::FileFormat::safetensors,
       .seed = 1,
       .hugging_face_order = hugging_face});
}

// The tensors an engine can hold: those of a type ggml has.
bool ggml_has_type(const weightmap::TensorInfo& t) {
  return weightmap::dtype_info(t.dtype).in_ggml;
}

// Reads the file once so every run starts with a warm page cache.
void warm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(std::size_t{8} << 20);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
  }
}

// The core's time-to-ready: every tensor as stored, default requests (natural alignment).
double core_ready(const std::string& path, std::size_t& mapped) {
  const auto start = Clock::now();
  const weightmap::Model model = weightmap::open_model(path);
  std::vector<weightmap::TensorRequest> requests;
  requests.reserve(model.tensors().size());
  for (const auto& t : model.tensors()) {
    if (!ggml_has_type(t)) continue;
    weightmap::TensorRequest request;
    request.name = t.name;
    requests.push_back(std::move(request));
  }
  const auto loaded = weightmap::load(model, requests);
  const double seconds = seconds_since(start);
  mapped = loaded.report.mapped_tensors;
  return seconds;
}

struct GgmlTimes {
  double open = 0;     // open_model
  double tensors = 0;  // the engine's own work: its no_alloc context, tensors and name map
  double bind = 0;
};

// An engine's time-to-ready: open, create its tensors in a no_alloc context, bind to the CPU.
GgmlTimes ggml_ready(const std::string& path, weightmap::ggml::BindReport& report) {
  GgmlTimes times;
  auto start = Clock::now();
  const weightmap::Model model = weightmap::open_model(path);
  times.open = seconds_since(start);
  start = Clock::now();
  ggml_init_params params{ggml_tensor_overhead() * model.tensors().size(), nullptr, true};
  ggml_context* context = ggml_init(params);
  weightmap::ggml::EngineTensors tensors;
  tensors.contexts = {context};
  for (const auto& t : model.tensors()) {
    if (!ggml_has_type(t)) continue;
    const auto ne = weightmap::ggml::ne_of(t.shape);
    ggml_tensor* tensor = ggml_new_tensor(context, weightmap::ggml::ggml_type_of(t.dtype),
                                          static_cast<int>(t.shape.size()), ne.data());
    ggml_set_name(tensor, t.name.c_str());
    tensors.by_name.emplace(t.name, tensor);
  }
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  times.tensors = seconds_since(start);
  {
    start = Clock::now();
    const auto binding = weightmap::ggml::bind(
        model, tensors,
        [&](std::string_view, const ggml_tensor&) { return weightmap::ggml::TensorDevice{cpu}; });
    times.bind = seconds_since(start);
    report = binding.report();
  }
  ggml_free(context);
  return times;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time-to-ready of weightmap::ggml's bind against the core's load"};
  std::string path = "out/ggml-bind-bench.safetensors";
  std::string size = "4G";
  std::size_t count = 1000;
  int runs = 5;
  bool hugging_face = false;
  app.add_option("model", path, "Model file (.safetensors or .gguf); written when missing")
      ->capture_default_str();
  app.add_option("--size", size, "Size of the model to write")->capture_default_str();
  app.add_option("--tensors", count, "Tensors in the model to write")->capture_default_str();
  app.add_option("--runs", runs, "Runs per mode")->check(CLI::Range(1, 1000));
  app.add_flag("--hugging-face", hugging_face,
               "Write the missing model as Hugging Face's writer lays it out (f32 norms and "
               "biases, an i64 position_ids, tensors on 8-byte boundaries)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!std::filesystem::exists(path)) {
      const auto bytes = weightmap::testbed::parse_byte_size(size);
      if (!bytes) throw std::invalid_argument("--size: not a size: " + size);
      std::filesystem::create_directories(std::filesystem::path(path).parent_path());
      fmt::print("writing {} ({} tensors, {})\n", path, count, size);
      write_sample(path, *bytes, count, weightmap::DType::F16, hugging_face);
    }
    warm(path);
    std::vector<double> core, open, engine, bind, bound, bind_only;
    std::size_t core_mapped = 0;
    weightmap::ggml::BindReport report;
    for (int i = 0; i < runs; ++i) {
      // Alternating, so drift on a shared machine hits both alike.
      core.push_back(core_ready(path, core_mapped));
      const GgmlTimes t = ggml_ready(path, report);
      open.push_back(t.open);
      engine.push_back(t.tensors);
      bind.push_back(t.bind);
      bound.push_back(t.open + t.tensors + t.bind);
      bind_only.push_back(t.open + t.bind);
    }
    fmt::print("{} ({:.2f} GiB), medians of {} runs, page cache warm\n", path,
               static_cast<double>(std::filesystem::file_size(path)) / (1 << 30), runs);
    fmt::print("  core open_model + load:            {:.4f} s ({} tensors mapped)\n", median(core),
               core_mapped);
    fmt::print("  ggml open_model + tensors + bind:  {:.4f} s ({})\n", median(bound),
               report.summary_line());
    fmt::print(
        "    of which open_model {:.3f} ms, the engine's context and tensors {:.3f} ms, "
        "bind {:.3f} ms\n",
        median(open) * 1e3, median(engine) * 1e3, median(bind) * 1e3);
    fmt::print("  (open_model + bind) / core: {:.2f}x   (the weightmap side of binding)\n",
               median(bind_only) / median(core));
    fmt::print("  (open_model + tensors + bind) / core: {:.2f}x\n", median(bound) / median(core));
    const auto& load = report.load;
    const auto bytes = static_cast<double>(load.mapped_bytes + load.loaded_bytes);
    fmt::print("  bound to the CPU: {} of {} tensors mapped ({:.1f}% of the bytes)\n",
               load.mapped_tensors, load.mapped_tensors + load.loaded_tensors,
               bytes > 0 ? 100.0 * static_cast<double>(load.mapped_bytes) / bytes : 0.0);
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ggml_bind_bench: {}\n", e.what());
    return 1;
  }
}
