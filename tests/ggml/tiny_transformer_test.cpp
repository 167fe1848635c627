// The example engine gives bit-identical outputs on mapped and on copied weights.
#include "tiny_transformer/tiny_transformer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"

namespace weightmap::examples {
namespace {

ggml_backend_dev_t cpu(std::string_view) {
  return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

std::vector<float> run(const std::string& path, const TinyTransformerConfig& config, bool use_mmap,
                       ggml::BindReport& report) {
  ggml::BindOptions options;
  options.load.use_mmap = use_mmap;
  TinyTransformer engine(path, config, cpu, options);
  report = engine.report();
  return engine.forward(tiny_transformer_input(config));
}

bool bit_identical(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(GgmlTinyTransformer, MappedAndCopiedWeightsGiveBitIdenticalOutputs) {
  weightmap::testing::TempDir dir;
  const std::string path = dir / "tiny.safetensors";
  const TinyTransformerConfig config;
  write_tiny_transformer(path, config);

  ggml::BindReport mapped_report;
  ggml::BindReport copied_report;
  const auto mapped = run(path, config, true, mapped_report);
  const auto copied = run(path, config, false, copied_report);

  const std::size_t weights = tiny_transformer_tensors(config).size();
  // Everything but the q8_0 output projection, which ggml quantizes from the file's f16.
  EXPECT_EQ(mapped_report.load.mapped_tensors, weights - 1);
  EXPECT_EQ(mapped_report.quantized_tensors, 1u);
  EXPECT_EQ(copied_report.load.mapped_tensors, 0u);
  EXPECT_EQ(copied_report.load.loaded_tensors, weights);

  ASSERT_EQ(mapped.size(), static_cast<std::size_t>(config.d_model * config.n_tokens));
  EXPECT_TRUE(bit_identical(mapped, copied));
  // A real computation happened: not all zeros, no NaN.
  EXPECT_TRUE(std::any_of(mapped.begin(), mapped.end(), [](float v) { return v != 0.0f; }));
  EXPECT_TRUE(std::none_of(mapped.begin(), mapped.end(), [](float v) { return std::isnan(v); }));
}

}  // namespace
}  // namespace weightmap::examples
