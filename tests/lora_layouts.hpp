// Models and LoRAs laid out as the trainers write them, name for name, for SD 1.5, SD 2.x,
// SDXL and Flux: each module's factor names as the trainer spells them, the checkpoint tensor
// it patches and the rows it patches (for q, k, v and the MLP input of fused tensors). Names
// are written out here literally, from the public sources listed in docs/lora.md, and are
// kept apart from the presets they test (src/lora/lora_presets.cpp). Shapes are the real
// layouts' with small channel counts: [out, in] linears, [out, in, kh, kw] convolutions;
// factors as the trainers store them: down [rank, in] or [rank, in, kh, kw], up [rows, rank]
// or [rows, rank, 1, 1].
//
// Also for merge and patch tests: write_layout() writes base.safetensors and lora.safetensors,
// and each ModuleSpec says which rows of which base tensor its up x down lands on.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lora_fixtures.hpp"

namespace weightmap::lora_test {

struct BaseSpec {
  std::string name;
  std::vector<std::uint64_t> shape;
};

struct ModuleSpec {
  std::string down;   // the down factor's tensor name, as the trainer writes it
  std::string up;     // the up factor's
  std::string alpha;  // the alpha tensor's, "" when the trainer writes none
  std::string base_tensor;
  std::uint64_t row_begin = 0;
  std::uint64_t row_count = 0;  // 0: every row of the base tensor
  std::uint64_t rank = 2;
};

struct Layout {
  std::string preset;  // what detection must say
  DType base_dtype = DType::F16;
  DType lora_dtype = DType::F16;
  std::vector<BaseSpec> base;
  std::vector<ModuleSpec> modules;
  std::vector<std::pair<std::string, std::string>> lora_metadata;
};

// --- Part spellings (suffixes each trainer appends to a module's path) ---------------------

// kohya-ss/sd-scripts networks/lora.py: <name>.lora_down.weight, .lora_up.weight, .alpha.
inline ModuleSpec kohya(const std::string& module, std::string base, std::uint64_t begin = 0,
                        std::uint64_t count = 0) {
  return {module + ".lora_down.weight",
          module + ".lora_up.weight",
          module + ".alpha",
          std::move(base),
          begin,
          count};
}
// PEFT (diffusers >= 0.27, ai-toolkit): <path>.lora_A.weight (down), .lora_B.weight (up).
inline ModuleSpec peft(const std::string& module, std::string base, std::uint64_t begin = 0,
                       std::uint64_t count = 0) {
  return {module + ".lora_A.weight", module + ".lora_B.weight", "", std::move(base), begin, count};
}
// diffusers 0.21-0.26 LoRACompatibleLinear/Conv: <path>.lora.down.weight, .lora.up.weight.
inline ModuleSpec diffusers(const std::string& module, std::string base, std::uint64_t begin = 0,
                            std::uint64_t count = 0) {
  return {
      module + ".lora.down.weight", module + ".lora.up.weight", "", std::move(base), begin, count};
}
// diffusers 0.21-0.26 text encoder: <path>.lora_linear_layer.down.weight / .up.weight.
inline ModuleSpec linear_layer(const std::string& module, std::string base, std::uint64_t begin = 0,
                               std::uint64_t count = 0) {
  return {module + ".lora_linear_layer.down.weight",
          module + ".lora_linear_layer.up.weight",
          "",
          std::move(base),
          begin,
          count};
}
// diffusers attention processors (LoRAAttnProcessor): <attention>.processor.to_q_lora.down.weight.
inline ModuleSpec processor(const std::string& stem, std::string base) {
  return {stem + ".down.weight", stem + ".up.weight", "", std::move(base)};
}

// --- SD 1.5 checkpoint (LDM names: CompVis / runwayml v1-5-pruned) -----------------------

inline std::vector<BaseSpec> sd15_base() {
  return {
      {"model.diffusion_model.input_blocks.0.0.weight", {8, 4, 3, 3}},
      {"model.diffusion_model.input_blocks.0.0.bias", {8}},
      {"model.diffusion_model.time_embed.0.weight", {16, 8}},
      {"model.diffusion_model.time_embed.2.weight", {16, 16}},
      {"model.diffusion_model.input_blocks.1.0.in_layers.0.weight", {8}},
      {"model.diffusion_model.input_blocks.1.0.in_layers.2.weight", {8, 8, 3, 3}},
      {"model.diffusion_model.input_blocks.1.0.emb_layers.1.weight", {8, 16}},
      {"model.diffusion_model.input_blocks.1.0.out_layers.3.weight", {8, 8, 3, 3}},
      {"model.diffusion_model.input_blocks.1.1.norm.weight", {8}},
      {"model.diffusion_model.input_blocks.1.1.proj_in.weight", {8, 8, 1, 1}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", {8, 8}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_k.weight", {8, 8}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_v.weight", {8, 8}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight", {8, 8}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.bias", {8}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", {8, 6}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight", {64, 8}},
      {"model.diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.2.weight", {8, 32}},
      {"model.diffusion_model.input_blocks.1.1.proj_out.weight", {8, 8, 1, 1}},
      {"model.diffusion_model.input_blocks.2.0.emb_layers.1.weight", {8, 16}},
      {"model.diffusion_model.input_blocks.3.0.op.weight", {8, 8, 3, 3}},
      {"model.diffusion_model.input_blocks.4.0.in_layers.2.weight", {12, 8, 3, 3}},
      {"model.diffusion_model.input_blocks.4.0.skip_connection.weight", {12, 8, 1, 1}},
      {"model.diffusion_model.input_blocks.5.1.transformer_blocks.0.attn1.to_v.weight", {12, 12}},
      {"model.diffusion_model.input_blocks.11.0.out_layers.3.weight", {12, 12, 3, 3}},
      {"model.diffusion_model.middle_block.0.in_layers.2.weight", {12, 12, 3, 3}},
      {"model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_q.weight", {12, 12}},
      {"model.diffusion_model.middle_block.2.out_layers.3.weight", {12, 12, 3, 3}},
      {"model.diffusion_model.output_blocks.0.0.in_layers.2.weight", {12, 24, 3, 3}},
      {"model.diffusion_model.output_blocks.0.0.skip_connection.weight", {12, 24, 1, 1}},
      {"model.diffusion_model.output_blocks.2.1.conv.weight", {12, 12, 3, 3}},
      {"model.diffusion_model.output_blocks.3.1.proj_out.weight", {12, 12, 1, 1}},
      {"model.diffusion_model.output_blocks.8.2.conv.weight", {12, 12, 3, 3}},
      {"model.diffusion_model.output_blocks.11.0.emb_layers.1.weight", {8, 16}},
      {"model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_out.0.weight",
       {8, 8}},
      {"model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.2.weight", {8, 32}},
      {"model.diffusion_model.out.0.weight", {8}},
      {"model.diffusion_model.out.2.weight", {4, 8, 3, 3}},
      {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", {10, 6}},
      {"cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight", {6, 6}},
      {"cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.k_proj.weight", {6, 6}},
      {"cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.v_proj.weight", {6, 6}},
      {"cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.out_proj.weight",
       {6, 6}},
      {"cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc1.weight", {24, 6}},
      {"first_stage_model.decoder.conv_in.weight", {8, 4, 3, 3}},
  };
}

// kohya-ss/sd-scripts on SD 1.5 with conv_dim (LoCon): it trains the diffusers UNet, so its
// UNet names are diffusers names with '_' for '.'.
inline Layout sd15_kohya() {
  const std::string u = "model.diffusion_model.";
  const std::string t = "cond_stage_model.transformer.text_model.encoder.";
  return {
      "sd1",
      DType::F16,
      DType::F16,
      sd15_base(),
      {
          kohya("lora_unet_down_blocks_0_attentions_0_proj_in",
                u + "input_blocks.1.1.proj_in.weight"),
          kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
                u + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"),
          kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0",
                u + "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"),
          kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
                u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"),
          kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj",
                u + "input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight"),
          kohya("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2",
                u + "input_blocks.1.1.transformer_blocks.0.ff.net.2.weight"),
          kohya("lora_unet_down_blocks_0_attentions_0_proj_out",
                u + "input_blocks.1.1.proj_out.weight"),
          kohya("lora_unet_down_blocks_0_resnets_0_conv1",
                u + "input_blocks.1.0.in_layers.2.weight"),
          kohya("lora_unet_down_blocks_0_resnets_0_time_emb_proj",
                u + "input_blocks.1.0.emb_layers.1.weight"),
          kohya("lora_unet_down_blocks_0_resnets_0_conv2",
                u + "input_blocks.1.0.out_layers.3.weight"),
          kohya("lora_unet_down_blocks_0_resnets_1_time_emb_proj",
                u + "input_blocks.2.0.emb_layers.1.weight"),
          kohya("lora_unet_down_blocks_0_downsamplers_0_conv", u + "input_blocks.3.0.op.weight"),
          kohya("lora_unet_down_blocks_1_resnets_0_conv1",
                u + "input_blocks.4.0.in_layers.2.weight"),
          kohya("lora_unet_down_blocks_1_resnets_0_conv_shortcut",
                u + "input_blocks.4.0.skip_connection.weight"),
          kohya("lora_unet_down_blocks_1_attentions_1_transformer_blocks_0_attn1_to_v",
                u + "input_blocks.5.1.transformer_blocks.0.attn1.to_v.weight"),
          kohya("lora_unet_down_blocks_3_resnets_1_conv2",
                u + "input_blocks.11.0.out_layers.3.weight"),
          kohya("lora_unet_mid_block_resnets_0_conv1", u + "middle_block.0.in_layers.2.weight"),
          kohya("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_q",
                u + "middle_block.1.transformer_blocks.0.attn2.to_q.weight"),
          kohya("lora_unet_mid_block_resnets_1_conv2", u + "middle_block.2.out_layers.3.weight"),
          kohya("lora_unet_up_blocks_0_resnets_0_conv1",
                u + "output_blocks.0.0.in_layers.2.weight"),
          kohya("lora_unet_up_blocks_0_resnets_0_conv_shortcut",
                u + "output_blocks.0.0.skip_connection.weight"),
          kohya("lora_unet_up_blocks_0_upsamplers_0_conv", u + "output_blocks.2.1.conv.weight"),
          kohya("lora_unet_up_blocks_1_attentions_0_proj_out",
                u + "output_blocks.3.1.proj_out.weight"),
          kohya("lora_unet_up_blocks_2_upsamplers_0_conv", u + "output_blocks.8.2.conv.weight"),
          kohya("lora_unet_up_blocks_3_resnets_2_time_emb_proj",
                u + "output_blocks.11.0.emb_layers.1.weight"),
          kohya("lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0",
                u + "output_blocks.11.1.transformer_blocks.0.attn2.to_out.0.weight"),
          kohya("lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2",
                u + "output_blocks.11.1.transformer_blocks.0.ff.net.2.weight"),
          kohya("lora_te_text_model_encoder_layers_0_self_attn_q_proj",
                t + "layers.0.self_attn.q_proj.weight"),
          kohya("lora_te_text_model_encoder_layers_0_self_attn_out_proj",
                t + "layers.0.self_attn.out_proj.weight"),
          kohya("lora_te_text_model_encoder_layers_11_mlp_fc1", t + "layers.11.mlp.fc1.weight"),
      },
      {{"ss_network_module", "networks.lora"}, {"ss_network_dim", "2"}}};
}

// diffusers >= 0.27 / PEFT on SD 1.5: "unet." and "text_encoder." prefixes, lora_A / lora_B.
inline Layout sd15_peft() {
  const std::string u = "model.diffusion_model.";
  const std::string t = "cond_stage_model.transformer.text_model.encoder.";
  return {
      "sd1",
      DType::F16,
      DType::F32,
      sd15_base(),
      {
          peft("unet.conv_in", u + "input_blocks.0.0.weight"),
          peft("unet.time_embedding.linear_1", u + "time_embed.0.weight"),
          peft("unet.time_embedding.linear_2", u + "time_embed.2.weight"),
          peft("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k",
               u + "input_blocks.1.1.transformer_blocks.0.attn1.to_k.weight"),
          peft("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
               u + "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"),
          peft("unet.down_blocks.0.resnets.0.conv1", u + "input_blocks.1.0.in_layers.2.weight"),
          peft("unet.down_blocks.0.downsamplers.0.conv", u + "input_blocks.3.0.op.weight"),
          peft("unet.down_blocks.1.resnets.0.conv_shortcut",
               u + "input_blocks.4.0.skip_connection.weight"),
          peft("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_q",
               u + "middle_block.1.transformer_blocks.0.attn2.to_q.weight"),
          peft("unet.mid_block.resnets.1.conv2", u + "middle_block.2.out_layers.3.weight"),
          peft("unet.up_blocks.0.upsamplers.0.conv", u + "output_blocks.2.1.conv.weight"),
          peft("unet.up_blocks.2.upsamplers.0.conv", u + "output_blocks.8.2.conv.weight"),
          peft("unet.up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0",
               u + "output_blocks.11.1.transformer_blocks.0.attn2.to_out.0.weight"),
          peft("unet.conv_out", u + "out.2.weight"),
          peft("text_encoder.text_model.encoder.layers.0.self_attn.k_proj",
               t + "layers.0.self_attn.k_proj.weight"),
          peft("text_encoder.text_model.encoder.layers.11.mlp.fc1", t + "layers.11.mlp.fc1.weight"),
      },
      {}};
}

// diffusers 0.21-0.26 on SD 1.5: UNet LoRACompatible layers and the text encoder's
// lora_linear_layer.
inline Layout sd15_diffusers() {
  const std::string u = "model.diffusion_model.";
  const std::string t = "cond_stage_model.transformer.text_model.encoder.";
  return {"sd1",
          DType::F16,
          DType::F32,
          sd15_base(),
          {
              diffusers("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                        u + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"),
              diffusers("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v",
                        u + "input_blocks.1.1.transformer_blocks.0.attn1.to_v.weight"),
              diffusers("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
                        u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"),
              diffusers("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
                        u + "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"),
              diffusers("unet.down_blocks.1.attentions.1.transformer_blocks.0.attn1.to_v",
                        u + "input_blocks.5.1.transformer_blocks.0.attn1.to_v.weight"),
              diffusers("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_q",
                        u + "middle_block.1.transformer_blocks.0.attn2.to_q.weight"),
              diffusers("unet.up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0",
                        u + "output_blocks.11.1.transformer_blocks.0.attn2.to_out.0.weight"),
              linear_layer("text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                           t + "layers.0.self_attn.q_proj.weight"),
              linear_layer("text_encoder.text_model.encoder.layers.0.self_attn.v_proj",
                           t + "layers.0.self_attn.v_proj.weight"),
              linear_layer("text_encoder.text_model.encoder.layers.0.self_attn.out_proj",
                           t + "layers.0.self_attn.out_proj.weight"),
              linear_layer("text_encoder.text_model.encoder.layers.11.mlp.fc1",
                           t + "layers.11.mlp.fc1.weight"),
          },
          {}};
}

// Older diffusers attention processors: unet.save_attn_procs (no prefix), pipelines'
// "unet." prefix, and the text encoder's to_q_lora without .processor.
inline Layout sd15_processor() {
  const std::string u = "model.diffusion_model.";
  const std::string t = "cond_stage_model.transformer.text_model.encoder.";
  return {
      "sd1",
      DType::F16,
      DType::F32,
      sd15_base(),
      {
          processor("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora",
                    u + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"),
          processor("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora",
                    u + "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"),
          processor(
              "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_k_lora",
              u + "input_blocks.1.1.transformer_blocks.0.attn1.to_k.weight"),
          processor(
              "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora",
              u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"),
          processor("unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_q_lora",
                    u + "middle_block.1.transformer_blocks.0.attn2.to_q.weight"),
          processor(
              "unet.up_blocks.3.attentions.2.transformer_blocks.0.attn2.processor.to_out_lora",
              u + "output_blocks.11.1.transformer_blocks.0.attn2.to_out.0.weight"),
          processor("text_encoder.text_model.encoder.layers.0.self_attn.to_q_lora",
                    t + "layers.0.self_attn.q_proj.weight"),
          processor("text_encoder.text_model.encoder.layers.0.self_attn.to_out_lora",
                    t + "layers.0.self_attn.out_proj.weight"),
      },
      {}};
}

// --- SD 2.x checkpoint: LDM UNet (linear proj_in), OpenCLIP text encoder ------------------

inline Layout sd2_kohya_and_diffusers() {
  const std::string u = "model.diffusion_model.";
  const std::string c = "cond_stage_model.model.transformer.resblocks.";
  return {"sd2",
          DType::F16,
          DType::F16,
          {
              {u + "input_blocks.1.1.proj_in.weight", {8, 8}},
              {u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", {8, 8}},
              {u + "output_blocks.2.1.conv.weight", {8, 8, 3, 3}},
              {"cond_stage_model.model.token_embedding.weight", {10, 8}},
              {"cond_stage_model.model.positional_embedding", {4, 8}},
              {c + "0.attn.in_proj_weight", {24, 8}},
              {c + "0.attn.in_proj_bias", {24}},
              {c + "0.attn.out_proj.weight", {8, 8}},
              {c + "0.mlp.c_fc.weight", {32, 8}},
              {c + "0.mlp.c_proj.weight", {8, 32}},
              {c + "22.attn.in_proj_weight", {24, 8}},
          },
          {
              kohya("lora_unet_down_blocks_0_attentions_0_proj_in",
                    u + "input_blocks.1.1.proj_in.weight"),
              kohya("lora_unet_up_blocks_0_upsamplers_0_conv", u + "output_blocks.2.1.conv.weight"),
              kohya("lora_te_text_model_encoder_layers_0_self_attn_q_proj",
                    c + "0.attn.in_proj_weight", 0, 8),
              kohya("lora_te_text_model_encoder_layers_0_self_attn_k_proj",
                    c + "0.attn.in_proj_weight", 8, 8),
              kohya("lora_te_text_model_encoder_layers_0_self_attn_v_proj",
                    c + "0.attn.in_proj_weight", 16, 8),
              kohya("lora_te_text_model_encoder_layers_0_self_attn_out_proj",
                    c + "0.attn.out_proj.weight"),
              kohya("lora_te_text_model_encoder_layers_0_mlp_fc1", c + "0.mlp.c_fc.weight"),
              kohya("lora_te_text_model_encoder_layers_0_mlp_fc2", c + "0.mlp.c_proj.weight"),
              diffusers("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
                        u + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"),
              linear_layer("text_encoder.text_model.encoder.layers.22.self_attn.v_proj",
                           c + "22.attn.in_proj_weight", 16, 8),
          },
          {}};
}

// --- SDXL checkpoint: LDM UNet (three levels), CLIP-L and OpenCLIP bigG ------------------

inline std::vector<BaseSpec> sdxl_base() {
  const std::string u = "model.diffusion_model.";
  const std::string g = "conditioner.embedders.1.model.transformer.resblocks.";
  const std::string l = "conditioner.embedders.0.transformer.text_model.encoder.";
  return {
      {u + "time_embed.0.weight", {16, 8}},
      {u + "label_emb.0.0.weight", {16, 12}},
      {u + "label_emb.0.2.weight", {16, 16}},
      {u + "input_blocks.1.0.in_layers.2.weight", {8, 8, 3, 3}},
      {u + "input_blocks.1.0.emb_layers.1.weight", {8, 16}},
      {u + "input_blocks.3.0.op.weight", {8, 8, 3, 3}},
      {u + "input_blocks.4.1.proj_in.weight", {12, 12}},
      {u + "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight", {12, 12}},
      {u + "input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight", {12, 10}},
      {u + "middle_block.1.transformer_blocks.1.attn2.to_v.weight", {12, 10}},
      {u + "output_blocks.2.2.conv.weight", {12, 12, 3, 3}},
      {u + "output_blocks.5.1.transformer_blocks.1.ff.net.0.proj.weight", {96, 12}},
      {u + "output_blocks.8.0.skip_connection.weight", {8, 16, 1, 1}},
      {l + "layers.0.self_attn.q_proj.weight", {6, 6}},
      {l + "layers.0.mlp.fc2.weight", {6, 24}},
      {g + "0.attn.in_proj_weight", {24, 8}},
      {g + "0.attn.in_proj_bias", {24}},
      {g + "0.attn.out_proj.weight", {8, 8}},
      {g + "0.mlp.c_fc.weight", {32, 8}},
      {g + "0.mlp.c_proj.weight", {8, 32}},
      {g + "1.attn.in_proj_weight", {24, 8}},
      {"conditioner.embedders.1.model.text_projection", {8, 8}},
  };
}

// kohya-ss/sd-scripts sdxl_train_network: the UNet in LDM names (sdxl_original_unet), the
// text encoders as lora_te1_ / lora_te2_ in HF CLIP names.
inline Layout sdxl_kohya() {
  const std::string u = "model.diffusion_model.";
  const std::string g = "conditioner.embedders.1.model.transformer.resblocks.";
  const std::string l = "conditioner.embedders.0.transformer.text_model.encoder.";
  return {"sdxl",
          DType::F16,
          DType::F16,
          sdxl_base(),
          {
              kohya("lora_unet_input_blocks_1_0_in_layers_2",
                    u + "input_blocks.1.0.in_layers.2.weight"),
              kohya("lora_unet_input_blocks_1_0_emb_layers_1",
                    u + "input_blocks.1.0.emb_layers.1.weight"),
              kohya("lora_unet_input_blocks_3_0_op", u + "input_blocks.3.0.op.weight"),
              kohya("lora_unet_input_blocks_4_1_proj_in", u + "input_blocks.4.1.proj_in.weight"),
              kohya("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
                    u + "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"),
              kohya("lora_unet_input_blocks_4_1_transformer_blocks_1_attn2_to_k",
                    u + "input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight"),
              kohya("lora_unet_middle_block_1_transformer_blocks_1_attn2_to_v",
                    u + "middle_block.1.transformer_blocks.1.attn2.to_v.weight"),
              kohya("lora_unet_output_blocks_2_2_conv", u + "output_blocks.2.2.conv.weight"),
              kohya("lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_0_proj",
                    u + "output_blocks.5.1.transformer_blocks.1.ff.net.0.proj.weight"),
              kohya("lora_unet_output_blocks_8_0_skip_connection",
                    u + "output_blocks.8.0.skip_connection.weight"),
              kohya("lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
                    l + "layers.0.self_attn.q_proj.weight"),
              kohya("lora_te1_text_model_encoder_layers_0_mlp_fc2", l + "layers.0.mlp.fc2.weight"),
              kohya("lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
                    g + "0.attn.in_proj_weight", 0, 8),
              kohya("lora_te2_text_model_encoder_layers_0_self_attn_k_proj",
                    g + "0.attn.in_proj_weight", 8, 8),
              kohya("lora_te2_text_model_encoder_layers_0_self_attn_v_proj",
                    g + "0.attn.in_proj_weight", 16, 8),
              kohya("lora_te2_text_model_encoder_layers_0_self_attn_out_proj",
                    g + "0.attn.out_proj.weight"),
              kohya("lora_te2_text_model_encoder_layers_0_mlp_fc1", g + "0.mlp.c_fc.weight"),
              kohya("lora_te2_text_model_encoder_layers_0_mlp_fc2", g + "0.mlp.c_proj.weight"),
              kohya("lora_te2_text_model_encoder_layers_1_self_attn_v_proj",
                    g + "1.attn.in_proj_weight", 16, 8),
          },
          {{"ss_network_module", "networks.lora"}, {"ss_base_model_version", "sdxl_base_v1-0"}}};
}

// diffusers SDXL pipelines (PEFT): unet., text_encoder., text_encoder_2.
inline Layout sdxl_peft() {
  const std::string u = "model.diffusion_model.";
  const std::string g = "conditioner.embedders.1.model.transformer.resblocks.";
  const std::string l = "conditioner.embedders.0.transformer.text_model.encoder.";
  return {"sdxl",
          DType::F16,
          DType::F32,
          sdxl_base(),
          {
              peft("unet.add_embedding.linear_1", u + "label_emb.0.0.weight"),
              peft("unet.down_blocks.0.resnets.0.time_emb_proj",
                   u + "input_blocks.1.0.emb_layers.1.weight"),
              peft("unet.down_blocks.0.downsamplers.0.conv", u + "input_blocks.3.0.op.weight"),
              peft("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                   u + "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"),
              peft("unet.mid_block.attentions.0.transformer_blocks.1.attn2.to_v",
                   u + "middle_block.1.transformer_blocks.1.attn2.to_v.weight"),
              peft("unet.up_blocks.0.upsamplers.0.conv", u + "output_blocks.2.2.conv.weight"),
              peft("unet.up_blocks.1.attentions.2.transformer_blocks.1.ff.net.0.proj",
                   u + "output_blocks.5.1.transformer_blocks.1.ff.net.0.proj.weight"),
              peft("unet.up_blocks.2.resnets.2.conv_shortcut",
                   u + "output_blocks.8.0.skip_connection.weight"),
              peft("text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
                   l + "layers.0.self_attn.q_proj.weight"),
              peft("text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj",
                   g + "0.attn.in_proj_weight", 8, 8),
              peft("text_encoder_2.text_model.encoder.layers.0.mlp.fc2", g + "0.mlp.c_proj.weight"),
          },
          {}};
}

// --- Flux checkpoint (Black Forest Labs layout: flux1-dev.safetensors), hidden 6, MLP 24 --

inline std::vector<BaseSpec> flux_base() {
  return {
      {"img_in.weight", {6, 16}},
      {"txt_in.weight", {6, 8}},
      {"time_in.in_layer.weight", {6, 16}},
      {"time_in.out_layer.weight", {6, 6}},
      {"vector_in.in_layer.weight", {6, 8}},
      {"vector_in.out_layer.weight", {6, 6}},
      {"guidance_in.in_layer.weight", {6, 16}},
      {"guidance_in.out_layer.weight", {6, 6}},
      {"double_blocks.0.img_attn.qkv.weight", {18, 6}},
      {"double_blocks.0.img_attn.qkv.bias", {18}},
      {"double_blocks.0.img_attn.norm.query_norm.scale", {2}},
      {"double_blocks.0.img_attn.proj.weight", {6, 6}},
      {"double_blocks.0.img_mlp.0.weight", {24, 6}},
      {"double_blocks.0.img_mlp.2.weight", {6, 24}},
      {"double_blocks.0.img_mod.lin.weight", {36, 6}},
      {"double_blocks.0.txt_attn.qkv.weight", {18, 6}},
      {"double_blocks.0.txt_attn.proj.weight", {6, 6}},
      {"double_blocks.0.txt_mlp.0.weight", {24, 6}},
      {"double_blocks.0.txt_mlp.2.weight", {6, 24}},
      {"double_blocks.0.txt_mod.lin.weight", {36, 6}},
      {"double_blocks.1.img_attn.qkv.weight", {18, 6}},
      {"single_blocks.0.linear1.weight", {42, 6}},
      {"single_blocks.0.linear1.bias", {42}},
      {"single_blocks.0.linear2.weight", {6, 30}},
      {"single_blocks.0.modulation.lin.weight", {18, 6}},
      {"single_blocks.1.linear1.weight", {42, 6}},
      {"final_layer.linear.weight", {16, 6}},
      {"final_layer.adaLN_modulation.1.weight", {12, 6}},
  };
}

// ai-toolkit and diffusers' Flux trainers: diffusers names under "transformer.", PEFT parts.
// q, k and v land on thirds of the fused qkv, and on hidden-wide blocks of linear1 followed
// by the MLP input (proj_mlp).
inline Layout flux_ai_toolkit() {
  return {
      "flux",
      DType::BF16,
      DType::BF16,
      flux_base(),
      {
          peft("transformer.transformer_blocks.0.attn.to_q", "double_blocks.0.img_attn.qkv.weight",
               0, 6),
          peft("transformer.transformer_blocks.0.attn.to_k", "double_blocks.0.img_attn.qkv.weight",
               6, 6),
          peft("transformer.transformer_blocks.0.attn.to_v", "double_blocks.0.img_attn.qkv.weight",
               12, 6),
          peft("transformer.transformer_blocks.0.attn.add_q_proj",
               "double_blocks.0.txt_attn.qkv.weight", 0, 6),
          peft("transformer.transformer_blocks.0.attn.add_k_proj",
               "double_blocks.0.txt_attn.qkv.weight", 6, 6),
          peft("transformer.transformer_blocks.0.attn.add_v_proj",
               "double_blocks.0.txt_attn.qkv.weight", 12, 6),
          peft("transformer.transformer_blocks.0.attn.to_out.0",
               "double_blocks.0.img_attn.proj.weight"),
          peft("transformer.transformer_blocks.0.attn.to_add_out",
               "double_blocks.0.txt_attn.proj.weight"),
          peft("transformer.transformer_blocks.0.ff.net.0.proj",
               "double_blocks.0.img_mlp.0.weight"),
          peft("transformer.transformer_blocks.0.ff.net.2", "double_blocks.0.img_mlp.2.weight"),
          peft("transformer.transformer_blocks.0.ff_context.net.0.proj",
               "double_blocks.0.txt_mlp.0.weight"),
          peft("transformer.transformer_blocks.0.ff_context.net.2",
               "double_blocks.0.txt_mlp.2.weight"),
          peft("transformer.transformer_blocks.0.norm1.linear",
               "double_blocks.0.img_mod.lin.weight"),
          peft("transformer.transformer_blocks.0.norm1_context.linear",
               "double_blocks.0.txt_mod.lin.weight"),
          peft("transformer.transformer_blocks.1.attn.to_v", "double_blocks.1.img_attn.qkv.weight",
               12, 6),
          peft("transformer.single_transformer_blocks.0.attn.to_q",
               "single_blocks.0.linear1.weight", 0, 6),
          peft("transformer.single_transformer_blocks.0.attn.to_k",
               "single_blocks.0.linear1.weight", 6, 6),
          peft("transformer.single_transformer_blocks.0.attn.to_v",
               "single_blocks.0.linear1.weight", 12, 6),
          peft("transformer.single_transformer_blocks.0.proj_mlp", "single_blocks.0.linear1.weight",
               18, 24),
          peft("transformer.single_transformer_blocks.0.proj_out",
               "single_blocks.0.linear2.weight"),
          peft("transformer.single_transformer_blocks.0.norm.linear",
               "single_blocks.0.modulation.lin.weight"),
          peft("transformer.single_transformer_blocks.1.proj_mlp", "single_blocks.1.linear1.weight",
               18, 24),
          peft("transformer.x_embedder", "img_in.weight"),
          peft("transformer.context_embedder", "txt_in.weight"),
          peft("transformer.time_text_embed.timestep_embedder.linear_1", "time_in.in_layer.weight"),
          peft("transformer.time_text_embed.timestep_embedder.linear_2",
               "time_in.out_layer.weight"),
          peft("transformer.time_text_embed.text_embedder.linear_1", "vector_in.in_layer.weight"),
          peft("transformer.time_text_embed.guidance_embedder.linear_2",
               "guidance_in.out_layer.weight"),
          peft("transformer.proj_out", "final_layer.linear.weight"),
      },
      {}};
}

// kohya-ss/sd-scripts flux_train_network (networks/lora_flux.py): BFL names with '_'; the
// fused qkv and linear1 are one module each.
inline Layout flux_kohya() {
  return {
      "flux",
      DType::BF16,
      DType::BF16,
      flux_base(),
      {
          kohya("lora_unet_double_blocks_0_img_attn_qkv", "double_blocks.0.img_attn.qkv.weight"),
          kohya("lora_unet_double_blocks_0_img_attn_proj", "double_blocks.0.img_attn.proj.weight"),
          kohya("lora_unet_double_blocks_0_img_mlp_0", "double_blocks.0.img_mlp.0.weight"),
          kohya("lora_unet_double_blocks_0_img_mlp_2", "double_blocks.0.img_mlp.2.weight"),
          kohya("lora_unet_double_blocks_0_img_mod_lin", "double_blocks.0.img_mod.lin.weight"),
          kohya("lora_unet_double_blocks_0_txt_attn_qkv", "double_blocks.0.txt_attn.qkv.weight"),
          kohya("lora_unet_double_blocks_0_txt_attn_proj", "double_blocks.0.txt_attn.proj.weight"),
          kohya("lora_unet_double_blocks_0_txt_mlp_0", "double_blocks.0.txt_mlp.0.weight"),
          kohya("lora_unet_double_blocks_0_txt_mlp_2", "double_blocks.0.txt_mlp.2.weight"),
          kohya("lora_unet_double_blocks_0_txt_mod_lin", "double_blocks.0.txt_mod.lin.weight"),
          kohya("lora_unet_double_blocks_1_img_attn_qkv", "double_blocks.1.img_attn.qkv.weight"),
          kohya("lora_unet_single_blocks_0_linear1", "single_blocks.0.linear1.weight"),
          kohya("lora_unet_single_blocks_0_linear2", "single_blocks.0.linear2.weight"),
          kohya("lora_unet_single_blocks_0_modulation_lin",
                "single_blocks.0.modulation.lin.weight"),
          kohya("lora_unet_single_blocks_1_linear1", "single_blocks.1.linear1.weight"),
      },
      {{"ss_network_module", "networks.lora_flux"}}};
}

// --- Writing -------------------------------------------------------------------------------

inline std::uint64_t rows_of(const ModuleSpec& module, const BaseSpec& base) {
  return module.row_count != 0 ? module.row_count : base.shape[0];
}

inline const BaseSpec& base_of(const Layout& layout, const ModuleSpec& module) {
  for (const auto& base : layout.base) {
    if (base.name == module.base_tensor) return base;
  }
  return layout.base.front();  // a fixture error: the test's target check fails on it
}

// Base tensors from seed 1000 + index; factors: down from 2 * index + 1, up 2 * index + 2,
// values in [-0.5, 0.5); alpha = rank * 2 for kohya modules (a scale of 2).
inline void write_layout(const Layout& layout, const std::string& base_path,
                         const std::string& lora_path) {
  std::vector<FloatTensor> base;
  for (std::size_t i = 0; i < layout.base.size(); ++i) {
    base.push_back(random_tensor(layout.base[i].name, layout.base_dtype, layout.base[i].shape,
                                 static_cast<std::uint32_t>(1000 + i)));
  }
  write_tensors(base_path, base);
  std::vector<FloatTensor> lora;
  for (std::size_t i = 0; i < layout.modules.size(); ++i) {
    const ModuleSpec& module = layout.modules[i];
    const BaseSpec& target = base_of(layout, module);
    std::vector<std::uint64_t> down{module.rank};
    std::vector<std::uint64_t> up{rows_of(module, target), module.rank};
    for (std::size_t d = 1; d < target.shape.size(); ++d) down.push_back(target.shape[d]);
    if (target.shape.size() == 4) up.insert(up.end(), {1, 1});
    const auto seed = static_cast<std::uint32_t>(2 * i);
    if (!module.alpha.empty()) {
      lora.push_back(
          {module.alpha, layout.lora_dtype, {}, {2.0f * static_cast<float>(module.rank)}});
    }
    lora.push_back(random_tensor(module.down, layout.lora_dtype, down, seed + 1, 0.5f));
    lora.push_back(random_tensor(module.up, layout.lora_dtype, up, seed + 2, 0.5f));
  }
  write_tensors(lora_path, lora, layout.lora_metadata);
}

}  // namespace weightmap::lora_test
