// LoRAs from the wild on the checkpoints they are made for: every module of each trainer's
// spelling (kohya, PEFT, diffusers .lora.down / lora_linear_layer, attention processors,
// ai-toolkit) matches its base tensor, and modules of fused tensors (OpenCLIP in_proj, Flux
// qkv and linear1) the right rows, with the preset detected from the base names alone.
#include "lora_layouts.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <span>

#include "support/cli_run.hpp"
#include "support/safetensors_bytes.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

using lora_test::Layout;
using testing::TempDir;

struct Matched {
  LoraFile lora;
  LoraMatch match;
};

Matched match_layout(const Layout& layout, const TempDir& dir) {
  lora_test::write_layout(layout, dir / "base.safetensors", dir / "lora.safetensors");
  const Model base = open_model(dir / "base.safetensors");
  EXPECT_EQ(detect_lora_preset(base), layout.preset);
  Matched out{read_lora(dir / "lora.safetensors"), {}};
  out.match = match_lora(out.lora, base);
  return out;
}

// Every module matches, each its base tensor and rows, and no tensor of the file is left out.
void expect_every_module_matches(const Layout& layout) {
  TempDir dir;
  const Matched m = match_layout(layout, dir);
  EXPECT_EQ(m.match.preset, layout.preset);
  EXPECT_TRUE(m.lora.ignored.empty()) << m.lora.ignored.front();
  for (const auto& unmatched : m.match.unmatched) ADD_FAILURE() << "unmatched " << unmatched.module;
  ASSERT_EQ(m.lora.modules.size(), layout.modules.size());
  ASSERT_EQ(m.match.targets.size(), layout.modules.size());
  for (const auto& spec : layout.modules) {
    const LoraTarget* found = nullptr;
    for (const auto& target : m.match.targets) {
      if (m.lora.modules[target.module].down->name == spec.down) found = &target;
    }
    ASSERT_NE(found, nullptr) << spec.down;
    const auto& base = lora_test::base_of(layout, spec);
    EXPECT_EQ(found->base_tensor, spec.base_tensor) << spec.down;
    EXPECT_EQ(found->rows, base.shape[0]) << spec.down;
    EXPECT_EQ(found->row_begin, spec.row_begin) << spec.down;
    EXPECT_EQ(found->row_count, lora_test::rows_of(spec, base)) << spec.down;
    EXPECT_FALSE(found->rule.empty()) << spec.down;
    const LoraModule& module = m.lora.modules[found->module];
    EXPECT_EQ(module.alpha_source, spec.alpha.empty() ? AlphaSource::rank : AlphaSource::tensor)
        << spec.down;
  }
}

TEST(LoraLayouts, Sd15KohyaLoConUnetInDiffusersNamesMatchesLdmCheckpoint) {
  const Layout layout = lora_test::sd15_kohya();
  expect_every_module_matches(layout);
}

TEST(LoraLayouts, Sd15PeftUnetAndTextEncoderMatch) {
  expect_every_module_matches(lora_test::sd15_peft());
}

TEST(LoraLayouts, Sd15DiffusersLoraDownAndLoraLinearLayerMatch) {
  TempDir dir;
  const Matched m = match_layout(lora_test::sd15_diffusers(), dir);
  EXPECT_EQ(m.lora.naming, LoraNaming::diffusers);
  expect_every_module_matches(lora_test::sd15_diffusers());
}

TEST(LoraLayouts, Sd15AttentionProcessorLorasMatch) {
  TempDir dir;
  const Matched m = match_layout(lora_test::sd15_processor(), dir);
  // The reader names each module after the projection it patches.
  ASSERT_FALSE(m.lora.modules.empty());
  EXPECT_EQ(m.lora.modules[0].name, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q");
  EXPECT_EQ(m.lora.modules[1].name,
            "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0");
  expect_every_module_matches(lora_test::sd15_processor());
}

TEST(LoraLayouts, Sd2OpenClipQkvAreThirdsOfInProj) {
  expect_every_module_matches(lora_test::sd2_kohya_and_diffusers());
}

TEST(LoraLayouts, SdxlKohyaIncludingTe2MatchesFusedInProj) {
  expect_every_module_matches(lora_test::sdxl_kohya());
}

TEST(LoraLayouts, SdxlDiffusersPeftMatches) { expect_every_module_matches(lora_test::sdxl_peft()); }

TEST(LoraLayouts, FluxAiToolkitSplitQkvAndSingleBlocksPatchRowsOfFusedTensors) {
  expect_every_module_matches(lora_test::flux_ai_toolkit());
}

TEST(LoraLayouts, FluxKohyaPatchesWholeFusedTensors) {
  expect_every_module_matches(lora_test::flux_kohya());
}

TEST(LoraLayouts, FluxCheckpointWithLdmPrefixIsDetectedAndMatched) {
  Layout layout = lora_test::flux_ai_toolkit();
  for (auto& base : layout.base) base.name = "model.diffusion_model." + base.name;
  for (auto& module : layout.modules)
    module.base_tensor = "model.diffusion_model." + module.base_tensor;
  expect_every_module_matches(layout);
}

std::vector<float> read_floats(const Model& model, const std::string& name) {
  const TensorInfo& info = *model.find(name);
  std::ifstream in(model.files()[info.file].path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(info.offset));
  std::vector<std::byte> bytes(static_cast<std::size_t>(info.nbytes));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return lora_test::as_floats(info.dtype, bytes);
}

// End to end: the ai-toolkit Flux LoRA merged into an f32 checkpoint by name alone equals
// base + scale * up x down on each module's rows (in module order), within one ulp.
TEST(LoraLayouts, FluxAiToolkitMergeLandsEachModuleOnItsRows) {
  Layout layout = lora_test::flux_ai_toolkit();
  layout.base_dtype = DType::F32;
  TempDir dir;
  lora_test::write_layout(layout, dir / "base.safetensors", dir / "lora.safetensors");
  const Model base = open_model(dir / "base.safetensors");
  auto lora = std::make_shared<const LoraFile>(read_lora(dir / "lora.safetensors"));
  const LoraUse use{lora, match_lora(*lora, base, true), 0.75f};
  write_merged_model(base, std::span(&use, 1), dir / "merged.safetensors");
  const Model merged = open_model(dir / "merged.safetensors");
  const Model factors = open_model(dir / "lora.safetensors");

  std::map<std::string, std::vector<float>> want;
  for (const auto& tensor : base.tensors()) want[tensor.name] = read_floats(base, tensor.name);
  for (const auto& spec : layout.modules) {
    const auto& shape = lora_test::base_of(layout, spec).shape;
    const std::uint64_t cols = shape[1];
    const std::uint64_t rows = lora_test::rows_of(spec, lora_test::base_of(layout, spec));
    const auto up = read_floats(factors, spec.up);
    const auto down = read_floats(factors, spec.down);
    const float scale = 0.75f;  // alpha = rank: a scale of the multiplier
    std::vector<float>& w = want[spec.base_tensor];
    for (std::uint64_t o = 0; o < rows; ++o) {
      for (std::uint64_t c = 0; c < cols; ++c) {
        float sum = 0;
        for (std::uint64_t r = 0; r < spec.rank; ++r) {
          sum += up[o * spec.rank + r] * down[r * cols + c];
        }
        w[(spec.row_begin + o) * cols + c] += scale * sum;
      }
    }
  }
  for (const auto& [name, values] : want) {
    const auto got = read_floats(merged, name);
    ASSERT_EQ(got.size(), values.size()) << name;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const float ulp = std::nextafter(std::fabs(values[i]), INFINITY) - std::fabs(values[i]);
      ASSERT_LE(std::fabs(got[i] - values[i]), ulp) << name << " element " << i;
    }
  }
}

TEST(LoraLayouts, SliceThatDoesNotFitNamesTheRows) {
  Layout layout = lora_test::flux_ai_toolkit();
  layout.modules.resize(1);
  layout.modules[0].row_count = 7;  // q of a hidden width 6 has 6 rows
  TempDir dir;
  lora_test::write_layout(layout, dir / "base.safetensors", dir / "lora.safetensors");
  try {
    match_lora(read_lora(dir / "lora.safetensors"), open_model(dir / "base.safetensors"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              dir / "lora.safetensors" +
                  ": LoRA module transformer.transformer_blocks.0.attn.to_q (up [7, 2], down [2, "
                  "6]) does not fit base tensor double_blocks.0.img_attn.qkv.weight (rows 0..6) "
                  "of shape [18, 6]; is the LoRA made for another model?");
  }
}

TEST(LoraLayouts, PresetOverridesDetectionAndUnknownPresetIsAnError) {
  TempDir dir;
  lora_test::write_layout(lora_test::sdxl_kohya(), dir / "base.safetensors",
                          dir / "lora.safetensors");
  const Model base = open_model(dir / "base.safetensors");
  const LoraFile lora = read_lora(dir / "lora.safetensors");
  // The SD 1.x tables know neither SDXL's text encoders nor OpenCLIP: their 9 modules stay
  // unmatched, the UNet's (LDM names) match.
  const LoraMatch sd1 = match_lora(lora, base, lora_preset_rules("sd1"));
  EXPECT_EQ(sd1.preset, "sd1");
  EXPECT_EQ(sd1.targets.size(), 10u);
  ASSERT_EQ(sd1.unmatched.size(), 9u);
  EXPECT_EQ(sd1.unmatched.front().module, "lora_te1_text_model_encoder_layers_0_self_attn_q_proj");
  try {
    lora_preset_rules("sd3");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              "unknown LoRA name preset \"sd3\" (known: flux, sdxl, sd2, sd1)");
  }
}

TEST(LoraLayouts, LlamaAdapterNamesStillMatchWithoutAPreset) {
  TempDir dir;
  lora_test::write_tensors(
      dir / "base.safetensors",
      {lora_test::random_tensor("blk.0.attn_q.weight", DType::F32, {6, 8}, 1),
       lora_test::random_tensor("model.layers.0.mlp.up_proj.weight", DType::F32, {5, 8}, 2)});
  lora_test::write_tensors(
      dir / "lora.safetensors",
      {lora_test::random_tensor("blk.0.attn_q.weight.lora_a", DType::F32, {2, 8}, 1),
       lora_test::random_tensor("blk.0.attn_q.weight.lora_b", DType::F32, {6, 2}, 2),
       lora_test::random_tensor("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight",
                                DType::F32, {2, 8}, 3),
       lora_test::random_tensor("base_model.model.model.layers.0.mlp.up_proj.lora_B.weight",
                                DType::F32, {5, 2}, 4)});
  const Model base = open_model(dir / "base.safetensors");
  EXPECT_EQ(detect_lora_preset(base), "");
  const LoraMatch match = match_lora(read_lora(dir / "lora.safetensors"), base);
  EXPECT_TRUE(match.unmatched.empty());
  ASSERT_EQ(match.targets.size(), 2u);
  EXPECT_EQ(match.targets[0].base_tensor, "blk.0.attn_q.weight");
  EXPECT_EQ(match.targets[0].rule, "");
  EXPECT_EQ(match.targets[1].base_tensor, "model.layers.0.mlp.up_proj.weight");
}

TEST(LoraLayouts, InspectShowsPresetRuleAndRowsOfSlices) {
  TempDir dir;
  lora_test::write_layout(lora_test::flux_ai_toolkit(), dir / "base.safetensors",
                          dir / "lora.safetensors");
  const auto text = test::run_cli_captured(
      {"lora", "inspect", dir / "lora.safetensors", "--base", dir / "base.safetensors"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("name rules: flux (detected)\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  transformer.single_transformer_blocks.0.proj_mlp  lora  rank 2  "
                          "alpha 2 (rank)  -> single_blocks.0.linear1.weight rows 18..42 of 42\n"
                          "      by flux flux (transformer.): single_transformer_blocks.{a}. -> "
                          "single_blocks.{a}., proj_mlp -> linear1\n"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("matched 29 of 29 modules, 0 unmatched, 0 ignored tensors\n"),
            std::string::npos)
      << text.out;

  const auto json = test::run_cli_captured(
      {"lora", "inspect", "--json", dir / "lora.safetensors", "--base", dir / "base.safetensors"});
  ASSERT_EQ(json.code, 0) << json.err;
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(json.out);
  EXPECT_EQ(std::string_view(doc["preset"]), "flux");
  EXPECT_EQ(std::uint64_t(doc["totals"]["matched"]), 29u);
  EXPECT_EQ(std::uint64_t(doc["totals"]["unmatched"]), 0u);
  EXPECT_EQ(std::uint64_t(doc["totals"]["ignored"]), 0u);
  const auto k = doc["modules"].at(1);
  EXPECT_EQ(std::string_view(k["name"]), "transformer.transformer_blocks.0.attn.to_k");
  EXPECT_EQ(std::string_view(k["target"]), "double_blocks.0.img_attn.qkv.weight");
  EXPECT_EQ(std::uint64_t(k["row_begin"]), 6u);
  EXPECT_EQ(std::uint64_t(k["row_count"]), 6u);
  EXPECT_TRUE(bool(k["slice"]));
  EXPECT_EQ(std::string_view(k["rule"]),
            "flux flux (transformer.): transformer_blocks.{a}. -> double_blocks.{a}., attn.to_k -> "
            "img_attn.qkv");

  // --rules plain: diffusers names mean nothing to the BFL checkpoint.
  const auto plain =
      test::run_cli_captured({"lora", "inspect", "--json", "--rules", "plain",
                              dir / "lora.safetensors", "--base", dir / "base.safetensors"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  simdjson::dom::parser plain_parser;
  EXPECT_EQ(std::uint64_t(plain_parser.parse(plain.out)["totals"]["unmatched"]), 29u);
}

}  // namespace
}  // namespace weightmap
