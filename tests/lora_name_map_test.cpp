// The interpreter of the LoRA name tables, on its own: patterns with captures, linear index
// expressions, nested rules, row slices, and the candidates a preset gives for a name.
#include "lora/lora_name_map.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace weightmap::lora_detail {
namespace {

constexpr NameRule kParts[] = {
    {"conv1", "in_layers.2"},
    {.from = "attn.to_k", .to = "qkv", .slice = {RowSlice::Kind::third, 1}},
};
constexpr NameRule kBlocks = {"down_blocks.{a}.resnets.{b}.", "input_blocks.{3a+b+1}.0.", kParts};

TEST(LoraNameMap, PatternCapturesNumbersAndWritesLinearExpressions) {
  const auto dotted = apply_rule(kBlocks, "down_blocks.2.resnets.1.conv1");
  ASSERT_TRUE(dotted);
  EXPECT_EQ(dotted->name, "input_blocks.8.0.in_layers.2");
  EXPECT_EQ(dotted->slice.kind, RowSlice::Kind::whole);
  EXPECT_EQ(dotted->rule,
            "down_blocks.{a}.resnets.{b}. -> input_blocks.{3a+b+1}.0., conv1 -> in_layers.2");
  // kohya writes every '.' as '_': the pattern's '.' matches both.
  const auto kohya = apply_rule(kBlocks, "down_blocks_0_resnets_0_conv1");
  ASSERT_TRUE(kohya);
  EXPECT_EQ(kohya->name, "input_blocks.1.0.in_layers.2");
  // What no nested rule names stays as it is.
  EXPECT_EQ(apply_rule(kBlocks, "down_blocks_1_resnets_0_norm3")->name, "input_blocks.4.0.norm3");
  EXPECT_FALSE(apply_rule(kBlocks, "up_blocks.0.resnets.0.conv1"));
  EXPECT_FALSE(apply_rule(kBlocks, "down_blocks.x.resnets.0.conv1"));
}

TEST(LoraNameMap, PatternWithoutTrailingDotMustMatchTheWholeName) {
  constexpr NameRule rule{"conv_in", "input_blocks.0.0"};
  EXPECT_TRUE(apply_rule(rule, "conv_in"));
  EXPECT_FALSE(apply_rule(rule, "conv_in_extra"));
  // '_' in a pattern is not a '.': text_encoder. is no prefix of text_encoder_2.
  constexpr NameRule dotted{"a_b", "x"};
  EXPECT_FALSE(apply_rule(dotted, "a.b"));
}

TEST(LoraNameMap, NestedRuleCarriesItsSlice) {
  constexpr NameRule parent{"blocks.{a}.", "double_blocks.{a}.", kParts};
  const auto result = apply_rule(parent, "blocks.7.attn.to_k");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->name, "double_blocks.7.qkv");
  EXPECT_EQ(result->slice.kind, RowSlice::Kind::third);
  EXPECT_EQ(result->slice.index, 1);
}

TEST(LoraNameMap, SliceRowsOfThirdsAndHiddenBlocks) {
  using P = std::pair<std::uint64_t, std::uint64_t>;
  EXPECT_EQ(slice_rows({}, 18, 6), (P{0, 18}));
  EXPECT_EQ(slice_rows({RowSlice::Kind::third, 2}, 18, 6), (P{12, 6}));
  EXPECT_FALSE(slice_rows({RowSlice::Kind::third, 0}, 17, 6));
  // Flux linear1 [3 hidden + mlp, hidden]: q, k, v of `cols` rows each, then the MLP.
  EXPECT_EQ(slice_rows({RowSlice::Kind::hidden, 1}, 42, 6), (P{6, 6}));
  EXPECT_EQ(slice_rows({RowSlice::Kind::past_hidden, 3}, 42, 6), (P{18, 24}));
  EXPECT_FALSE(slice_rows({RowSlice::Kind::past_hidden, 3}, 18, 6));
  EXPECT_FALSE(slice_rows({RowSlice::Kind::hidden, 3}, 18, 6));
}

TEST(LoraNameMap, PresetsListCandidatesPerComponentAndBasePrefix) {
  const NamePreset* sdxl = find_name_preset("sdxl");
  ASSERT_NE(sdxl, nullptr);
  const auto candidates =
      name_candidates(*sdxl, "lora_te2_text_model_encoder_layers_3_self_attn_v_proj");
  ASSERT_FALSE(candidates.empty());
  EXPECT_EQ(candidates.front().name,
            "conditioner.embedders.1.model.transformer.resblocks.3.attn.in_proj");
  EXPECT_EQ(candidates.front().tensor_suffix, "_weight");
  EXPECT_EQ(candidates.front().slice.kind, RowSlice::Kind::third);
  EXPECT_EQ(candidates.front().slice.index, 2);
  EXPECT_EQ(find_name_preset("sd3"), nullptr);
  // Every preset's tables are reachable by name.
  for (const auto& preset : name_presets()) EXPECT_EQ(find_name_preset(preset.name), &preset);
}

}  // namespace
}  // namespace weightmap::lora_detail
