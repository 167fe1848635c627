// A Prefetcher over what bind() mapped: the engine's tensors point into the file, and the
// prefetcher reaches exactly the mapped ones, under the model's names.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "ggml/model_fixture.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/model.hpp"
#include "weightmap/prefetch.hpp"

namespace weightmap::ggml {
namespace {

TensorDevice on_cpu(std::string_view, const ggml_tensor&) { return {test::cpu_device()}; }

TEST(GgmlBindPrefetch, PrefetchesTheMappedTensorsOfABinding) {
  const std::vector<test::FloatTensor> model = {
      {"layer.weight", DType::F32, {16, 8}, test::ramp(128, 1)},
      {"layer.bias", DType::F32, {16}, test::ramp(16, 2)},
      {"out.weight", DType::F32, {4, 16}, test::ramp(64, 3)}};
  weightmap::testing::TempDir dir;
  const std::string path = dir / "model.safetensors";
  test::write_model(path, model, 32);
  test::Context context;
  EngineTensors tensors;
  tensors.contexts.push_back(context.get());
  // out.weight as f16 in the engine: converted by the core, so loaded, not mapped.
  for (const auto& t : model) {
    const ggml_type type = t.name == "out.weight" ? GGML_TYPE_F16 : GGML_TYPE_F32;
    tensors.by_name[t.name] = context.add(t.name, type, t.shape);
  }

  const Binding binding = ggml::bind(open_model(path), tensors, on_cpu);
  ASSERT_EQ(binding.report().load.mapped_tensors, 2u);

  std::mutex mutex;
  std::vector<std::string> seen;
  PrefetchOptions options;
  options.on_tensor = [&](std::string_view name) {
    std::lock_guard lock(mutex);
    seen.emplace_back(name);
  };
  Prefetcher prefetcher(binding.mapped_tensors(), options);
  const PrefetchProgress done = prefetcher.wait();
  EXPECT_TRUE(done.finished);
  EXPECT_EQ(done.total_bytes, (128 + 16) * sizeof(float));
  EXPECT_EQ(seen, (std::vector<std::string>{"layer.weight", "layer.bias"}));
}

}  // namespace
}  // namespace weightmap::ggml
