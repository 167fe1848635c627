// The name tables: how each trainer names the modules of SD 1.x, SD 2.x, SDXL and Flux, and
// where the checkpoints keep those tensors. Facts from the public converters between the
// original (LDM / Black Forest Labs) layouts and diffusers' (see docs/lora.md); to support
// another model, add its domains and a preset here.
#include "lora/lora_name_map.hpp"

namespace weightmap::lora_detail {
namespace {

using Kind = RowSlice::Kind;

// --- Stable Diffusion UNet: diffusers names -> LDM names (two resnets per level) -------------

// A diffusers ResnetBlock2D's layers in an LDM ResBlock.
constexpr NameRule kResnetParts[] = {
    {"conv1", "in_layers.2"},          {"conv2", "out_layers.3"},
    {"time_emb_proj", "emb_layers.1"}, {"conv_shortcut", "skip_connection"},
    {"norm1", "in_layers.0"},          {"norm2", "out_layers.0"},
};

// Level a of down_blocks holds input_blocks 3a+1 and 3a+2 (resnet .0, attention .1) and its
// downsampler is input_blocks 3a+3; level a of up_blocks holds output_blocks 3a .. 3a+2, its
// upsampler the last of them, after the attention when the level has one (.2) or not (.1).
constexpr NameRule kUnetRules[] = {
    {"conv_in", "input_blocks.0.0"},
    {"time_embedding.linear_1", "time_embed.0"},
    {"time_embedding.linear_2", "time_embed.2"},
    {"add_embedding.linear_1", "label_emb.0.0"},
    {"add_embedding.linear_2", "label_emb.0.2"},
    {"down_blocks.{a}.resnets.{b}.", "input_blocks.{3a+b+1}.0.", kResnetParts},
    {"down_blocks.{a}.attentions.{b}.", "input_blocks.{3a+b+1}.1."},
    {"down_blocks.{a}.downsamplers.0.conv", "input_blocks.{3a+3}.0.op"},
    {"mid_block.resnets.{a}.", "middle_block.{2a}.", kResnetParts},
    {"mid_block.attentions.{a}.", "middle_block.{2a+1}."},
    {"up_blocks.{a}.resnets.{b}.", "output_blocks.{3a+b}.0.", kResnetParts},
    {"up_blocks.{a}.attentions.{b}.", "output_blocks.{3a+b}.1."},
    {"up_blocks.{a}.upsamplers.0.conv", "output_blocks.{3a+2}.2.conv"},
    {"up_blocks.{a}.upsamplers.0.conv", "output_blocks.{3a+2}.1.conv"},
    {"conv_norm_out", "out.0"},
    {"conv_out", "out.2"},
};

// --- Text encoders -------------------------------------------------------------------------

// Attention-processor LoRAs name the CLIP attention's projections as the UNet's.
constexpr NameRule kProcessorToClip[] = {
    {"to_q", "q_proj"},
    {"to_k", "k_proj"},
    {"to_v", "v_proj"},
    {"to_out.0", "out_proj"},
};

// HF CLIPTextModel, as SD 1.x and SDXL's first encoder keep it: names as the LoRA's.
constexpr NameRule kClipRules[] = {
    {"text_model.encoder.layers.{a}.self_attn.", "text_model.encoder.layers.{a}.self_attn.",
     kProcessorToClip},
};

constexpr RowSlice third(std::uint8_t index) { return {Kind::third, index}; }

// OpenCLIP keeps q, k and v in one in_proj_weight [3 width, width], in that order.
constexpr NameRule kOpenClipLayer[] = {
    {.from = "self_attn.q_proj",
     .to = "attn.in_proj",
     .slice = third(0),
     .tensor_suffix = "_weight"},
    {.from = "self_attn.k_proj",
     .to = "attn.in_proj",
     .slice = third(1),
     .tensor_suffix = "_weight"},
    {.from = "self_attn.v_proj",
     .to = "attn.in_proj",
     .slice = third(2),
     .tensor_suffix = "_weight"},
    {.from = "self_attn.to_q", .to = "attn.in_proj", .slice = third(0), .tensor_suffix = "_weight"},
    {.from = "self_attn.to_k", .to = "attn.in_proj", .slice = third(1), .tensor_suffix = "_weight"},
    {.from = "self_attn.to_v", .to = "attn.in_proj", .slice = third(2), .tensor_suffix = "_weight"},
    {"self_attn.out_proj", "attn.out_proj"},
    {"self_attn.to_out.0", "attn.out_proj"},
    {"mlp.fc1", "mlp.c_fc"},
    {"mlp.fc2", "mlp.c_proj"},
};

constexpr NameRule kOpenClipRules[] = {
    {"text_model.encoder.layers.{a}.", "transformer.resblocks.{a}.", kOpenClipLayer},
};

// --- Flux: diffusers names -> Black Forest Labs names --------------------------------------

constexpr RowSlice hidden(std::uint8_t index) { return {Kind::hidden, index}; }

constexpr NameRule kFluxDoubleBlock[] = {
    {.from = "attn.to_q", .to = "img_attn.qkv", .slice = third(0)},
    {.from = "attn.to_k", .to = "img_attn.qkv", .slice = third(1)},
    {.from = "attn.to_v", .to = "img_attn.qkv", .slice = third(2)},
    {.from = "attn.add_q_proj", .to = "txt_attn.qkv", .slice = third(0)},
    {.from = "attn.add_k_proj", .to = "txt_attn.qkv", .slice = third(1)},
    {.from = "attn.add_v_proj", .to = "txt_attn.qkv", .slice = third(2)},
    {"attn.to_out.0", "img_attn.proj"},
    {"attn.to_add_out", "txt_attn.proj"},
    {"ff.net.0.proj", "img_mlp.0"},
    {"ff.net.2", "img_mlp.2"},
    {"ff_context.net.0.proj", "txt_mlp.0"},
    {"ff_context.net.2", "txt_mlp.2"},
    {"norm1.linear", "img_mod.lin"},
    {"norm1_context.linear", "txt_mod.lin"},
};

// linear1 [3 hidden + mlp, hidden] is q, k, v, then the MLP input; linear2 the output of both.
constexpr NameRule kFluxSingleBlock[] = {
    {.from = "attn.to_q", .to = "linear1", .slice = hidden(0)},
    {.from = "attn.to_k", .to = "linear1", .slice = hidden(1)},
    {.from = "attn.to_v", .to = "linear1", .slice = hidden(2)},
    {.from = "proj_mlp", .to = "linear1", .slice = {Kind::past_hidden, 3}},
    {"proj_out", "linear2"},
    {"norm.linear", "modulation.lin"},
};

// norm_out.linear is final_layer.adaLN_modulation.1 with its two halves swapped: not one
// slice, so it is left unmatched (and reported) rather than patched wrongly.
constexpr NameRule kFluxRules[] = {
    {"transformer_blocks.{a}.", "double_blocks.{a}.", kFluxDoubleBlock},
    {"single_transformer_blocks.{a}.", "single_blocks.{a}.", kFluxSingleBlock},
    {"x_embedder", "img_in"},
    {"context_embedder", "txt_in"},
    {"time_text_embed.timestep_embedder.linear_1", "time_in.in_layer"},
    {"time_text_embed.timestep_embedder.linear_2", "time_in.out_layer"},
    {"time_text_embed.text_embedder.linear_1", "vector_in.in_layer"},
    {"time_text_embed.text_embedder.linear_2", "vector_in.out_layer"},
    {"time_text_embed.guidance_embedder.linear_1", "guidance_in.in_layer"},
    {"time_text_embed.guidance_embedder.linear_2", "guidance_in.out_layer"},
    {"proj_out", "final_layer.linear"},
};

// --- Where each part lives in each checkpoint ----------------------------------------------

// A UNet-only file has no prefix.
constexpr std::string_view kLdmUnetPrefixes[] = {"model.diffusion_model.", ""};
constexpr std::string_view kSd1ClipPrefixes[] = {"cond_stage_model.transformer."};
constexpr std::string_view kSd2OpenClipPrefixes[] = {"cond_stage_model.model."};
constexpr std::string_view kSdxlClipPrefixes[] = {"conditioner.embedders.0.transformer."};
constexpr std::string_view kSdxlOpenClipPrefixes[] = {"conditioner.embedders.1.model."};
// flux1-dev.safetensors has no prefix; checkpoints saved by ComfyUI have the LDM one.
constexpr std::string_view kFluxPrefixes[] = {"", "model.diffusion_model."};
constexpr std::string_view kFluxClipPrefixes[] = {"text_encoders.clip_l.transformer."};

constexpr NameDomain kLdmUnet{"unet", kLdmUnetPrefixes, kUnetRules};
constexpr NameDomain kSd1Clip{"clip", kSd1ClipPrefixes, kClipRules};
constexpr NameDomain kSd2OpenClip{"openclip", kSd2OpenClipPrefixes, kOpenClipRules};
constexpr NameDomain kSdxlClip{"clip", kSdxlClipPrefixes, kClipRules};
constexpr NameDomain kSdxlOpenClip{"openclip", kSdxlOpenClipPrefixes, kOpenClipRules};
constexpr NameDomain kFlux{"flux", kFluxPrefixes, kFluxRules};
constexpr NameDomain kFluxClip{"clip", kFluxClipPrefixes, kClipRules};

// Prefixes the trainers give each part: kohya (lora_unet_, lora_te_, lora_te1_, lora_te2_),
// diffusers / PEFT pipelines (unet., text_encoder., text_encoder_2., transformer.), PEFT
// models saved alone (base_model.model.), ComfyUI (diffusion_model.), and none (older
// attention-processor files).
constexpr NameComponent kSd1Components[] = {
    {"lora_unet_", &kLdmUnet},        {"unet.", &kLdmUnet},    {"diffusion_model.", &kLdmUnet},
    {"base_model.model.", &kLdmUnet}, {"lora_te_", &kSd1Clip}, {"lora_te1_", &kSd1Clip},
    {"text_encoder.", &kSd1Clip},     {"", &kLdmUnet},
};
constexpr NameComponent kSd2Components[] = {
    {"lora_unet_", &kLdmUnet},        {"unet.", &kLdmUnet},
    {"diffusion_model.", &kLdmUnet},  {"base_model.model.", &kLdmUnet},
    {"lora_te_", &kSd2OpenClip},      {"lora_te1_", &kSd2OpenClip},
    {"text_encoder.", &kSd2OpenClip}, {"", &kLdmUnet},
};
constexpr NameComponent kSdxlComponents[] = {
    {"lora_unet_", &kLdmUnet},
    {"unet.", &kLdmUnet},
    {"diffusion_model.", &kLdmUnet},
    {"base_model.model.", &kLdmUnet},
    {"lora_te1_", &kSdxlClip},
    {"text_encoder.", &kSdxlClip},
    {"lora_te2_", &kSdxlOpenClip},
    {"text_encoder_2.", &kSdxlOpenClip},
    {"", &kLdmUnet},
};
constexpr NameComponent kFluxComponents[] = {
    {"lora_unet_", &kFlux},        {"transformer.", &kFlux},
    {"diffusion_model.", &kFlux},  {"lora_transformer_", &kFlux},
    {"base_model.model.", &kFlux}, {"lora_te1_", &kFluxClip},
    {"text_encoder.", &kFluxClip}, {"", &kFlux},
};

constexpr std::string_view kFluxSignatures[] = {"double_blocks.0.img_attn.qkv.weight"};
constexpr std::string_view kSdxlSignatures[] = {"conditioner.embedders.1.model.transformer.",
                                                "diffusion_model.label_emb.0.0.weight"};
constexpr std::string_view kSd2Signatures[] = {"cond_stage_model.model.transformer."};
constexpr std::string_view kSd1Signatures[] = {"cond_stage_model.transformer.text_model.",
                                               "diffusion_model.input_blocks.1.1."};

// Detection tries them in this order: an SDXL or SD 2.x checkpoint also has SD 1.x's UNet names.
constexpr NamePreset kPresets[] = {
    {"flux", "Flux (Black Forest Labs layout: fused qkv and linear1)", kFluxSignatures,
     kFluxComponents},
    {"sdxl", "SDXL (LDM UNet, CLIP and OpenCLIP text encoders)", kSdxlSignatures, kSdxlComponents},
    {"sd2", "SD 2.x (LDM UNet, OpenCLIP text encoder)", kSd2Signatures, kSd2Components},
    {"sd1", "SD 1.x (LDM UNet, CLIP text encoder)", kSd1Signatures, kSd1Components},
};

}  // namespace

std::span<const NamePreset> name_presets() { return kPresets; }

}  // namespace weightmap::lora_detail
