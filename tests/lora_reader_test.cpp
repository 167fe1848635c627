// Reading LoRA files: kohya, PEFT, LoCon (with and without mid), diffs, GGUF adapters written
// by gguf-py, and the kinds weightmap refuses.
#include <gtest/gtest.h>

#include <fstream>

#include "lora_fixtures.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/shell_command.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

// In the fixtures' namespace (lora_fixtures.hpp): they are used unqualified.
namespace weightmap::lora_test {
namespace {

using testing::TempDir;

FloatTensor scalar(std::string name, float value) {
  return {std::move(name), DType::F32, {}, {value}};
}

std::string error_of(const std::string& path, const LoraReadOptions& options = {}) {
  try {
    read_lora(path, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(LoraReader, KohyaModuleGroupsUpDownAndAlpha) {
  TempDir dir;
  const auto path = dir / "kohya.safetensors";
  write_tensors(
      path,
      {
          scalar("lora_unet_input_blocks_1_1_proj_in.alpha", 2.0f),
          random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_down.weight", DType::F16, {4, 6},
                        1),
          random_tensor("lora_unet_input_blocks_1_1_proj_in.lora_up.weight", DType::F16, {5, 4}, 2),
          random_tensor("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down."
                        "weight",
                        DType::BF16, {4, 6}, 3),
          random_tensor("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", DType::BF16,
                        {7, 4}, 4),
      });
  const LoraFile lora = read_lora(path);
  EXPECT_EQ(lora.naming, LoraNaming::kohya);
  ASSERT_EQ(lora.modules.size(), 2u);
  const LoraModule& first = lora.modules[0];
  EXPECT_EQ(first.name, "lora_unet_input_blocks_1_1_proj_in");
  EXPECT_EQ(first.kind, LoraKind::low_rank);
  EXPECT_EQ(first.rank, 4u);
  EXPECT_EQ(first.alpha, 2.0f);
  EXPECT_EQ(first.alpha_source, AlphaSource::tensor);
  EXPECT_EQ(first.target_suffix, ".weight");
  EXPECT_FLOAT_EQ(lora_scale(first, 3.0f), 1.5f);  // 3 * 2 / 4
  EXPECT_EQ(lora.modules[1].alpha_source, AlphaSource::rank);
  EXPECT_EQ(lora.modules[1].alpha, 4.0f);
  EXPECT_TRUE(lora.ignored.empty());
}

TEST(LoraReader, PeftAlphaFromMetadataOptionOrRank) {
  TempDir dir;
  const std::vector<FloatTensor> tensors = {
      random_tensor("base_model.model.layers.0.q_proj.lora_A.weight", DType::F32, {8, 16}, 1),
      random_tensor("base_model.model.layers.0.q_proj.lora_B.weight", DType::F32, {16, 8}, 2),
      random_tensor("base_model.model.layers.0.norm.weight", DType::F32, {16}, 3),
  };
  write_tensors(dir / "plain.safetensors", tensors);
  write_tensors(dir / "meta.safetensors", tensors, {{"lora_alpha", "16"}});

  const LoraFile plain = read_lora(dir / "plain.safetensors");
  EXPECT_EQ(plain.naming, LoraNaming::peft);
  ASSERT_EQ(plain.modules.size(), 1u);
  EXPECT_EQ(plain.modules[0].name, "base_model.model.layers.0.q_proj");
  EXPECT_EQ(plain.modules[0].alpha, 8.0f);
  EXPECT_EQ(plain.modules[0].alpha_source, AlphaSource::rank);
  EXPECT_EQ(plain.ignored, std::vector<std::string>{"base_model.model.layers.0.norm.weight"});

  const LoraFile with_option = read_lora(dir / "plain.safetensors", {.alpha = 32.0f});
  EXPECT_EQ(with_option.modules[0].alpha, 32.0f);
  EXPECT_EQ(with_option.modules[0].alpha_source, AlphaSource::option);

  const LoraFile meta = read_lora(dir / "meta.safetensors", {.alpha = 32.0f});
  EXPECT_EQ(meta.modules[0].alpha, 16.0f);
  EXPECT_EQ(meta.modules[0].alpha_source, AlphaSource::metadata);
}

TEST(LoraReader, LoConConvolutionWithAndWithoutMid) {
  TempDir dir;
  const auto path = dir / "locon.safetensors";
  write_tensors(
      path, {
                random_tensor("lora_unet_conv_in.lora_down.weight", DType::F16, {2, 4, 3, 3}, 1),
                random_tensor("lora_unet_conv_in.lora_up.weight", DType::F16, {8, 2, 1, 1}, 2),
                random_tensor("lora_unet_conv_out.lora_down.weight", DType::F16, {2, 4, 1, 1}, 3),
                random_tensor("lora_unet_conv_out.lora_mid.weight", DType::F16, {2, 2, 3, 3}, 4),
                random_tensor("lora_unet_conv_out.lora_up.weight", DType::F16, {8, 2, 1, 1}, 5),
            });
  const LoraFile lora = read_lora(path);
  ASSERT_EQ(lora.modules.size(), 2u);
  EXPECT_EQ(lora.modules[0].kind, LoraKind::locon);
  EXPECT_EQ(lora.modules[1].kind, LoraKind::locon_mid);
  EXPECT_EQ(lora.modules[1].rank, 2u);
  EXPECT_EQ(lora_kind_name(lora.modules[1].kind), "locon_mid");
}

TEST(LoraReader, DiffsOfWeightsAndBiases) {
  TempDir dir;
  const auto path = dir / "diff.safetensors";
  write_tensors(path, {
                          random_tensor("lora_unet_out_2.diff", DType::F16, {4, 8}, 1),
                          random_tensor("lora_unet_out_2.diff_b", DType::F16, {4}, 2),
                      });
  const LoraFile lora = read_lora(path);
  ASSERT_EQ(lora.modules.size(), 2u);
  EXPECT_EQ(lora.modules[0].kind, LoraKind::diff);
  EXPECT_EQ(lora.modules[0].target_suffix, ".weight");
  EXPECT_EQ(lora.modules[1].name, "lora_unet_out_2");
  EXPECT_EQ(lora.modules[1].target_suffix, ".bias");
  EXPECT_FLOAT_EQ(lora_scale(lora.modules[0], 0.5f), 0.5f);
}

TEST(LoraReader, LoHaAndLoKrAreUnsupportedKinds) {
  TempDir dir;
  write_tensors(dir / "loha.safetensors",
                {random_tensor("lora_unet_proj.hada_w1_a", DType::F16, {4, 2}, 1)});
  EXPECT_EQ(error_of(dir / "loha.safetensors"),
            dir / "loha.safetensors" +
                ": unsupported LoRA kind LoHa for tensor lora_unet_proj.hada_w1_a");
  write_tensors(dir / "lokr.safetensors",
                {random_tensor("lora_unet_proj.lokr_w1", DType::F16, {4, 2}, 1)});
  EXPECT_EQ(
      error_of(dir / "lokr.safetensors"),
      dir / "lokr.safetensors" + ": unsupported LoRA kind LoKr for tensor lora_unet_proj.lokr_w1");
}

TEST(LoraReader, ModuleWithoutItsDownFactorIsMalformed) {
  TempDir dir;
  const auto path = dir / "half.safetensors";
  write_tensors(path, {random_tensor("lora_unet_proj.lora_up.weight", DType::F32, {4, 2}, 1)});
  EXPECT_EQ(error_of(path), path +
                                ": LoRA module lora_unet_proj has an up factor but no down factor "
                                "(tensor lora_unet_proj.lora_up.weight, byte 96)");
}

TEST(LoraReader, RanksOfUpAndDownMustAgree) {
  TempDir dir;
  const auto path = dir / "rank.safetensors";
  write_tensors(path, {random_tensor("m.lora_A.weight", DType::F32, {4, 6}, 1),
                       random_tensor("m.lora_B.weight", DType::F32, {5, 3}, 2)});
  EXPECT_EQ(error_of(path), path +
                                ": the up factor [5, 3] does not have the down factor's rank 4 "
                                "(tensor m.lora_B.weight, byte 248)");
}

TEST(LoraReader, GgufAdapterWrittenByGgufPy) {
  TempDir dir;
  const auto path = dir / "adapter.gguf";
  const auto failure = test::run_python_script("lora_write_gguf_adapter.py", {path});
  ASSERT_FALSE(failure) << *failure;
  const LoraFile lora = read_lora(path);
  EXPECT_EQ(lora.naming, LoraNaming::gguf);
  ASSERT_EQ(lora.modules.size(), 2u);
  EXPECT_EQ(lora.modules[0].name, "blk.0.attn_q.weight");
  EXPECT_EQ(lora.modules[0].target_suffix, "");
  EXPECT_EQ(lora.modules[0].rank, 2u);
  EXPECT_EQ(lora.modules[0].alpha, 4.0f);
  EXPECT_EQ(lora.modules[0].alpha_source, AlphaSource::metadata);
  EXPECT_EQ(lora.modules[0].up->shape, (std::vector<std::uint64_t>{6, 2}));
  EXPECT_EQ(lora.modules[0].down->shape, (std::vector<std::uint64_t>{2, 8}));
}

// Found while writing fuzz_lora: an f64 alpha beyond float's range has no float value (the
// cast is undefined, and gave an infinite scale); it counts as no alpha, as a non-finite one.
TEST(LoraReader, GgufAdapterAlphaBeyondFloatRangeIsIgnored) {
  TempDir dir;
  const auto path = dir / "huge-alpha.gguf";
  GgufWriteOptions options;
  options.metadata = {
      {"general.type", {MetadataType::string, MetadataType::string, std::string("adapter")}},
      {"adapter.type", {MetadataType::string, MetadataType::string, std::string("lora")}},
      {"adapter.lora.alpha", {MetadataType::f64, MetadataType::string, 1e300}},
  };
  const std::vector<float> zeros(16, 0.0f);
  write_gguf(
      path,
      {{"blk.0.attn_q.weight.lora_a", DType::F32, {2, 8}},
       {"blk.0.attn_q.weight.lora_b", DType::F32, {8, 2}}},
      [&](std::size_t, std::uint64_t offset, std::span<std::byte> out) {
        std::copy_n(std::as_bytes(std::span(zeros)).begin() + static_cast<std::ptrdiff_t>(offset),
                    out.size(), out.begin());
      },
      options);
  const LoraFile lora = read_lora(path);
  ASSERT_EQ(lora.modules.size(), 1u);
  EXPECT_EQ(lora.modules[0].alpha_source, AlphaSource::rank);
  EXPECT_EQ(lora.modules[0].alpha, 2.0f);
}

TEST(LoraReader, GgufAdapterOfAnotherTypeIsUnsupported) {
  TempDir dir;
  const auto path = dir / "cvec.gguf";
  write_tensors(path, {random_tensor("direction.1", DType::F32, {8}, 1)},
                {{"general.type", "adapter"}, {"adapter.type", "control_vector"}}, true);
  EXPECT_EQ(
      error_of(path),
      path +
          ": unsupported LoRA kind control_vector (the GGUF adapter's adapter.type is not lora)");
}

TEST(LoraReader, DiffusersSpellingsAreReadAsModules) {
  TempDir dir;
  const auto path = dir / "diffusers.safetensors";
  const std::string attn = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1";
  const std::string te = "text_encoder.text_model.encoder.layers.0.self_attn";
  write_tensors(
      path, {
                random_tensor(attn + ".to_q.lora.down.weight", DType::F32, {4, 8}, 1),
                random_tensor(attn + ".to_q.lora.up.weight", DType::F32, {8, 4}, 2),
                random_tensor(te + ".q_proj.lora_linear_layer.down.weight", DType::F32, {4, 6}, 3),
                random_tensor(te + ".q_proj.lora_linear_layer.up.weight", DType::F32, {6, 4}, 4),
                random_tensor(attn + ".processor.to_out_lora.down.weight", DType::F32, {4, 8}, 5),
                random_tensor(attn + ".processor.to_out_lora.up.weight", DType::F32, {8, 4}, 6),
                random_tensor(te + ".to_k_lora.down.weight", DType::F32, {4, 6}, 7),
                random_tensor(te + ".to_k_lora.up.weight", DType::F32, {6, 4}, 8),
                // PEFT with the adapter's name kept: not a part weightmap knows.
                random_tensor(attn + ".to_v.lora_A.default.weight", DType::F32, {4, 8}, 9),
            });
  const LoraFile lora = read_lora(path);
  EXPECT_EQ(lora.naming, LoraNaming::diffusers);
  ASSERT_EQ(lora.modules.size(), 4u);
  EXPECT_EQ(lora.modules[0].name, attn + ".to_q");
  EXPECT_EQ(lora.modules[1].name, te + ".q_proj");
  EXPECT_EQ(lora.modules[2].name, attn + ".to_out.0");
  EXPECT_EQ(lora.modules[3].name, te + ".to_k");
  for (const auto& module : lora.modules) {
    EXPECT_EQ(module.rank, 4u);
    EXPECT_EQ(module.target_suffix, ".weight");
  }
  // Unknown parts are reported, not dropped.
  EXPECT_EQ(lora.ignored, std::vector<std::string>{attn + ".to_v.lora_A.default.weight"});
}

TEST(LoraReader, DiffusersAdapterMetadataGivesAlphaPerComponentAndPattern) {
  TempDir dir;
  const auto path = dir / "peft.safetensors";
  const std::string json = R"({
  "text_encoder.lora_alpha": 16,
  "text_encoder.r": 4,
  "transformer.alpha_pattern": {"single_transformer_blocks.0.proj_mlp": 2.5},
  "transformer.lora_alpha": 8,
  "transformer.r": 4
})";
  write_tensors(path,
                {
                    random_tensor("transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight",
                                  DType::BF16, {4, 6}, 1),
                    random_tensor("transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight",
                                  DType::BF16, {6, 4}, 2),
                    random_tensor("transformer.single_transformer_blocks.0.proj_mlp.lora_A.weight",
                                  DType::BF16, {4, 6}, 3),
                    random_tensor("transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight",
                                  DType::BF16, {24, 4}, 4),
                    random_tensor("text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_A.weight",
                                  DType::BF16, {4, 6}, 5),
                    random_tensor("text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_B.weight",
                                  DType::BF16, {24, 4}, 6),
                    random_tensor("unet.conv_in.lora_A.weight", DType::BF16, {4, 6}, 7),
                    random_tensor("unet.conv_in.lora_B.weight", DType::BF16, {24, 4}, 8),
                },
                {{"format", "pt"}, {"lora_adapter_metadata", json}});
  const LoraFile lora = read_lora(path, {.alpha = 3.0f});
  ASSERT_EQ(lora.modules.size(), 4u);
  EXPECT_EQ(lora.modules[0].alpha, 8.0f);
  EXPECT_EQ(lora.modules[0].alpha_source, AlphaSource::metadata);
  EXPECT_EQ(lora.modules[1].alpha, 2.5f);  // alpha_pattern
  EXPECT_EQ(lora.modules[2].alpha, 16.0f);
  // A component the metadata does not describe falls back to the next source.
  EXPECT_EQ(lora.modules[3].alpha, 3.0f);
  EXPECT_EQ(lora.modules[3].alpha_source, AlphaSource::option);
  EXPECT_FLOAT_EQ(lora_scale(lora.modules[0], 1.0f), 2.0f);
}

TEST(LoraReader, UnprefixedAdapterMetadataAndBrokenJson) {
  TempDir dir;
  const std::vector<FloatTensor> tensors = {
      random_tensor("single_transformer_blocks.0.attn.to_q.lora_A.weight", DType::F32, {4, 6}, 1),
      random_tensor("single_transformer_blocks.0.attn.to_q.lora_B.weight", DType::F32, {6, 4}, 2)};
  write_tensors(dir / "plain.safetensors", tensors,
                {{"lora_adapter_metadata", R"({"lora_alpha": 32, "r": 4})"}});
  EXPECT_EQ(read_lora(dir / "plain.safetensors").modules[0].alpha, 32.0f);
  write_tensors(dir / "broken.safetensors", tensors,
                {{"lora_adapter_metadata", "{\"lora_alpha\":"}});
  const LoraFile broken = read_lora(dir / "broken.safetensors");
  EXPECT_EQ(broken.modules[0].alpha_source, AlphaSource::rank);
}

TEST(LoraReader, PeftAdapterConfigBesideTheModelGivesLoraAlpha) {
  TempDir dir;
  const std::vector<FloatTensor> tensors = {
      random_tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", DType::F32,
                    {4, 6}, 1),
      random_tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", DType::F32,
                    {6, 4}, 2),
      random_tensor("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", DType::F32,
                    {4, 6}, 3),
      random_tensor("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", DType::F32,
                    {6, 4}, 4)};
  write_tensors(dir / "adapter_model.safetensors", tensors);
  std::ofstream(dir / "adapter_config.json")
      << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 16, "alpha_pattern": {"mlp.down_proj": 2},
            "target_modules": ["q_proj", "down_proj"]})";
  const LoraFile lora = read_lora(dir / "adapter_model.safetensors");
  ASSERT_EQ(lora.modules.size(), 2u);
  EXPECT_EQ(lora.modules[0].alpha, 16.0f);
  EXPECT_EQ(lora.modules[0].alpha_source, AlphaSource::metadata);
  EXPECT_EQ(lora.modules[1].alpha, 2.0f);
  // Under another name the config is not the file's: no alpha from it.
  write_tensors(dir / "other.safetensors", tensors);
  EXPECT_EQ(read_lora(dir / "other.safetensors").modules[0].alpha_source, AlphaSource::rank);
}

}  // namespace
}  // namespace weightmap::lora_test
