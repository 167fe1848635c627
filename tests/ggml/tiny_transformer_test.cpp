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
  options.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
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

TEST(GgmlTinyTransformer, WeightOrderListsEveryWeightOnceInTheOrderTheGraphReadsThem) {
  weightmap::testing::TempDir dir;
  const std::string path = dir / "tiny.safetensors";
  const TinyTransformerConfig config;
  write_tiny_transformer(path, config);
  TinyTransformer engine(path, config, cpu);

  const std::vector<std::string> order = engine.weight_order();
  std::vector<std::string> names;
  for (const auto& t : tiny_transformer_tensors(config)) names.push_back(t.name);
  std::vector<std::string> sorted_order = order;
  std::sort(sorted_order.begin(), sorted_order.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(sorted_order, names);
  ASSERT_FALSE(order.empty());
  // Layer by layer, each layer's attention before its feed-forward block, the output last.
  EXPECT_EQ(order.front(), "blk.0.attn_norm.weight");
  EXPECT_EQ(order.back(), "output.weight");
  const auto at = [&](const std::string& name) {
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  EXPECT_LT(at("blk.0.attn_out.weight"), at("blk.0.ffn_up.weight"));
  EXPECT_LT(at("blk.0.ffn_down.bias"), at("blk.1.attn_norm.weight"));
  EXPECT_LT(at("blk.1.ffn_down.weight"), at("output_norm.weight"));
}

TEST(GgmlTinyTransformer, ForwardSaysWhichLayerItReachesInWeightOrderAndGivesTheSameOutput) {
  weightmap::testing::TempDir dir;
  const std::string path = dir / "tiny.safetensors";
  const TinyTransformerConfig config;  // 2 layers
  write_tiny_transformer(path, config);
  TinyTransformer engine(path, config, cpu);
  const auto input = tiny_transformer_input(config);

  const std::vector<float> plain = engine.forward(input);
  std::vector<std::string> reached;
  const std::vector<float> told =
      engine.forward(input, 2, [&](std::string_view name) { reached.emplace_back(name); });

  EXPECT_TRUE(bit_identical(plain, told));
  // Each layer's first weight once, then the output's, in weight_order()'s order.
  EXPECT_EQ(reached, (std::vector<std::string>{"blk.0.attn_norm.weight", "blk.1.attn_norm.weight",
                                               "output_norm.weight"}));
  const std::vector<std::string> order = engine.weight_order();
  const auto at = [&](const std::string& name) {
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  EXPECT_LT(at(reached[0]), at(reached[1]));
  EXPECT_LT(at(reached[1]), at(reached[2]));
  // The callback stays with that one call.
  reached.clear();
  engine.forward(input);
  EXPECT_TRUE(reached.empty());
}

}  // namespace
}  // namespace weightmap::examples
