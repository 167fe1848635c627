// Reading a LoRA file (kohya, PEFT/diffusers, LoCon, full differences, GGUF adapters): its
// tensors grouped into modules, each with its kind, rank and alpha. See docs/lora.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/model.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class LoraKind {
  low_rank,   // up [out, r] x down [r, in] (kohya lora_up/lora_down, PEFT lora_B/lora_A, GGUF)
  locon,      // convolution: down [r, in, kh, kw], up [out, r, 1, 1]
  locon_mid,  // convolution with a mid (Tucker) factor: up x mid x down
  diff,       // a full-weight difference: W += scale * diff
};
// "lora", "locon", "locon_mid", "diff".
std::string_view lora_kind_name(LoraKind kind) noexcept;

// How a file spells its modules.
enum class LoraNaming {
  kohya,  // lora_unet_down_blocks_0_..., .lora_up.weight / .lora_down.weight / .alpha
  peft,   // base_model.model.x.y.lora_A.weight / .lora_B.weight (and diffusers' PEFT files)
  gguf,   // a GGUF adapter (general.type = adapter): <base tensor>.lora_a / .lora_b
  // diffusers before PEFT: unet.x.lora.down.weight / .lora.up.weight, the text encoder's
  // x.lora_linear_layer.down.weight, and attention processors' x.processor.to_q_lora.down.weight
  diffusers,
};
std::string_view lora_naming_name(LoraNaming naming) noexcept;

enum class AlphaSource {
  tensor,  // the module's own .alpha tensor (kohya)
  // adapter.lora.alpha (GGUF); safetensors: diffusers' lora_adapter_metadata JSON
  // (lora_alpha, alpha_pattern), lora_alpha, kohya's ss_network_alpha
  metadata,
  option,  // LoraReadOptions::alpha
  rank,    // none given: alpha = rank, a scale of 1
};

// The tensors of one LoRA module: what patches one base tensor.
struct LoraModule {
  // Without the part suffix: "lora_unet_input_blocks_1_1_proj_in",
  // "base_model.model.model.layers.0.self_attn.q_proj", "blk.0.attn_q.weight".
  std::string name;
  // Appended to the mapped name to name the base tensor: ".weight" (".bias" for a
  // .diff_b); empty for GGUF adapters, whose module names are base tensor names already.
  std::string target_suffix;
  LoraKind kind = LoraKind::low_rank;
  // Entries of the LoRA file's model (the tensor's file, offset, dtype, shape).
  std::optional<TensorInfo> up, down, mid, diff;
  std::uint64_t rank = 0;  // 0 for a diff
  float alpha = 0;         // the effective alpha: scale = multiplier * alpha / rank
  AlphaSource alpha_source = AlphaSource::rank;
};

struct LoraFile {
  Model model;  // the adapter file, validated by open_model
  LoraNaming naming = LoraNaming::kohya;
  std::vector<LoraModule> modules;   // in the file order of their first tensor
  std::vector<std::string> ignored;  // tensors that belong to no module (reported, not used)

  const std::string& path() const { return model.files().front().path; }
};

struct LoraReadOptions {
  // Alpha for modules whose file gives none (a PEFT file's adapter_config.json is read when it
  // is beside adapter_model.safetensors; elsewhere, give its lora_alpha here).
  std::optional<float> alpha;
};

// Opens a LoRA file (safetensors or a GGUF adapter) and groups its tensors into modules.
// Throws weightmap::Error: whatever open_model throws; Error(unsupported) "unsupported LoRA
// kind X for tensor Y" for LoHa, LoKr, OFT, GLoRA, DoRA, IA3 and norm modules and for a GGUF
// whose adapter.type is not "lora"; Error(malformed) for a module missing a part (up without
// down), parts of different kinds, a rank that differs between up and down, or an .alpha
// that is not one finite f32/f16/bf16 value. Tensors with no LoRA suffix are listed in
// `ignored`.
LoraFile read_lora(const std::string& path, const LoraReadOptions& options = {});

// scale = multiplier * alpha / rank (multiplier alone for a diff), as every path computes it.
float lora_scale(const LoraModule& module, float multiplier) noexcept;

}  // namespace weightmap
WEIGHTMAP_API_END
