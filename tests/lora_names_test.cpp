// Matching LoRA modules to base tensors: prefix rules, kohya underscore names resolved
// against the base names, unmatched and ambiguous modules, shape checks, and the requests
// that make the planner map exactly the targets copy-on-write.
#include <gtest/gtest.h>

#include "lora_fixtures.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

// In the fixtures' namespace (lora_fixtures.hpp): they are used unqualified.
namespace weightmap::lora_test {
namespace {

using testing::TempDir;

std::vector<FloatTensor> low_rank(const std::string& module, std::uint64_t rows, std::uint64_t cols,
                                  std::uint64_t rank = 2) {
  return {random_tensor(module + ".lora_down.weight", DType::F16, {rank, cols}, 1),
          random_tensor(module + ".lora_up.weight", DType::F16, {rows, rank}, 2)};
}

std::vector<FloatTensor> concat(std::vector<std::vector<FloatTensor>> parts) {
  std::vector<FloatTensor> out;
  for (auto& part : parts) {
    for (auto& tensor : part) out.push_back(std::move(tensor));
  }
  return out;
}

TEST(LoraNames, KohyaUnderscoreNamesResolveAgainstBaseNames) {
  TempDir dir;
  write_tensors(dir / "base.safetensors",
                {random_tensor("model.diffusion_model.input_blocks.1.1.proj_in.weight", DType::F16,
                               {4, 6}, 1),
                 random_tensor("cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1."
                               "weight",
                               DType::F16, {3, 6}, 2)});
  write_tensors(dir / "lora.safetensors",
                concat({low_rank("lora_unet_input_blocks_1_1_proj_in", 4, 6),
                        low_rank("lora_te_text_model_encoder_layers_0_mlp_fc1", 3, 6),
                        low_rank("lora_unet_middle_block_1_proj_out", 4, 6)}));
  const Model base = open_model(dir / "base.safetensors");
  const LoraFile lora = read_lora(dir / "lora.safetensors");
  const LoraMatch match = match_lora(lora, base, sd_lora_name_rules());
  ASSERT_EQ(match.targets.size(), 2u);
  EXPECT_EQ(match.targets[0].base_tensor, "model.diffusion_model.input_blocks.1.1.proj_in.weight");
  EXPECT_EQ(match.targets[0].rows, 4u);
  EXPECT_EQ(match.targets[0].cols, 6u);
  EXPECT_EQ(match.targets[1].base_tensor,
            "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight");
  ASSERT_EQ(match.unmatched.size(), 1u);
  EXPECT_EQ(match.unmatched[0].module, "lora_unet_middle_block_1_proj_out");
  EXPECT_TRUE(match.unmatched[0].candidates.empty());
}

TEST(LoraNames, AmbiguousUnderscoreNameListsItsCandidates) {
  TempDir dir;
  write_tensors(dir / "base.safetensors", {random_tensor("a.b_c.weight", DType::F32, {2, 3}, 1),
                                           random_tensor("a_b.c.weight", DType::F32, {2, 3}, 2)});
  write_tensors(dir / "lora.safetensors", low_rank("lora_unet_a_b_c", 2, 3));
  const LoraMatch match = match_lora(read_lora(dir / "lora.safetensors"),
                                     open_model(dir / "base.safetensors"), plain_lora_name_rules());
  EXPECT_TRUE(match.targets.empty());
  ASSERT_EQ(match.unmatched.size(), 1u);
  // The plain rules keep the lora_unet_ prefix, so nothing matches there; the SD rules drop it.
  const LoraMatch sd = match_lora(read_lora(dir / "lora.safetensors"),
                                  open_model(dir / "base.safetensors"), sd_lora_name_rules());
  ASSERT_EQ(sd.unmatched.size(), 1u);
  EXPECT_EQ(sd.unmatched[0].candidates, (std::vector<std::string>{"a.b_c.weight", "a_b.c.weight"}));
}

TEST(LoraNames, PeftPrefixIsDroppedAndGgufNamesMatchAsTheyStand) {
  TempDir dir;
  write_tensors(dir / "base.safetensors",
                {random_tensor("model.layers.0.self_attn.q_proj.weight", DType::F32, {4, 6}, 1)});
  write_tensors(dir / "peft.safetensors",
                {random_tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                               DType::F32, {2, 6}, 1),
                 random_tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
                               DType::F32, {4, 2}, 2)});
  write_tensors(
      dir / "adapter.safetensors",
      {random_tensor("model.layers.0.self_attn.q_proj.weight.lora_a", DType::F32, {2, 6}, 1),
       random_tensor("model.layers.0.self_attn.q_proj.weight.lora_b", DType::F32, {4, 2}, 2)});
  const Model base = open_model(dir / "base.safetensors");
  for (const char* file : {"peft.safetensors", "adapter.safetensors"}) {
    const LoraMatch match = match_lora(read_lora(dir / file), base, plain_lora_name_rules());
    ASSERT_EQ(match.targets.size(), 1u) << file;
    EXPECT_EQ(match.targets[0].base_tensor, "model.layers.0.self_attn.q_proj.weight") << file;
  }
}

TEST(LoraNames, StrictModeMakesUnmatchedModulesAnError) {
  TempDir dir;
  write_tensors(dir / "base.safetensors", {random_tensor("x.weight", DType::F32, {2, 3}, 1)});
  write_tensors(dir / "lora.safetensors",
                concat({low_rank("lora_unet_x", 2, 3), low_rank("lora_unet_y", 2, 3),
                        low_rank("lora_unet_z", 2, 3)}));
  const LoraFile lora = read_lora(dir / "lora.safetensors");
  const Model base = open_model(dir / "base.safetensors");
  EXPECT_EQ(match_lora(lora, base, sd_lora_name_rules()).unmatched.size(), 2u);
  try {
    match_lora(lora, base, sd_lora_name_rules(), true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_EQ(std::string(e.what()),
              dir / "lora.safetensors" +
                  ": 2 LoRA modules match no base tensor: lora_unet_y, lora_unet_z");
  }
}

TEST(LoraNames, ShapesThatDoNotFitTheBaseAreAnError) {
  TempDir dir;
  write_tensors(dir / "base.safetensors", {random_tensor("x.weight", DType::F32, {2, 3}, 1)});
  write_tensors(dir / "lora.safetensors", low_rank("lora_unet_x", 2, 4));
  try {
    match_lora(read_lora(dir / "lora.safetensors"), open_model(dir / "base.safetensors"),
               sd_lora_name_rules());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              dir / "lora.safetensors" +
                  ": LoRA module lora_unet_x (up [2, 2], down [2, 4]) does not fit base tensor "
                  "x.weight of shape [2, 3]; is the LoRA made for another model?");
  }
}

TEST(LoraNames, RequestsMakeOnlyTargetsCopyOnWrite) {
  TempDir dir;
  std::filesystem::create_directory(dir / "model");
  write_tensors(dir / "model/a.safetensors", {random_tensor("x.weight", DType::F32, {2, 3}, 1),
                                              random_tensor("y.weight", DType::F32, {2, 3}, 2)});
  write_tensors(dir / "model/b.safetensors", {random_tensor("z.weight", DType::F32, {2, 3}, 3)});
  write_tensors(dir / "lora.safetensors", low_rank("lora_unet_x", 2, 3));
  const Model base = open_model(dir / "model");
  auto lora = std::make_shared<const LoraFile>(read_lora(dir / "lora.safetensors"));
  const std::vector<LoraUse> uses = {{lora, match_lora(*lora, base, sd_lora_name_rules()), 1.0f}};
  auto requests = lora_requests(base, uses);
  for (auto& request : requests) request.device.alignment = 4;  // what f32 needs on a CPU
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& request : requests) {
    EXPECT_EQ(request.writes_in_place, request.name == "x.weight") << request.name;
  }
  const Plan planned = plan(base, requests);
  for (const auto& tensor : planned.tensors) {
    EXPECT_EQ(tensor.placement, Placement::mapped);
    const bool in_a = base.files()[tensor.file].path.ends_with("a.safetensors");
    // One mapping per file: the file holding the target is mapped copy-on-write (its other
    // tensors stay shared until written), the other file read-only.
    EXPECT_EQ(tensor.access, in_a ? Access::copy_on_write : Access::read_only);
  }
  // A target nobody asked for gets a request of its own.
  std::vector<TensorRequest> only_z = {{.name = "z.weight"}};
  mark_lora_targets(only_z, uses);
  ASSERT_EQ(only_z.size(), 2u);
  EXPECT_FALSE(only_z[0].writes_in_place);
  EXPECT_EQ(only_z[1].name, "x.weight");
  EXPECT_TRUE(only_z[1].writes_in_place);
}

}  // namespace
}  // namespace weightmap::lora_test
