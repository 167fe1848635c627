// The alpha a diffusers LoRA keeps in its safetensors metadata: the key
// "lora_adapter_metadata" holds a JSON object of PEFT LoraConfig fields. Files diffusers'
// pipelines save prefix each field with the component it belongs to ("transformer.lora_alpha",
// "unet.alpha_pattern", "text_encoder.lora_alpha"); files a single model saves carry the
// fields unprefixed ("lora_alpha", "alpha_pattern"). diffusers strips "<component>." when
// it loads the component.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace weightmap::lora_detail {

struct AdapterAlphas {
  std::optional<float> alpha;            // lora_alpha
  std::map<std::string, float> pattern;  // alpha_pattern: module name (or its end) -> alpha
};

class AdapterMetadata {
 public:
  // Parses the JSON text; anything that is not such an object gives no alphas (the file is
  // still a LoRA, and its modules fall back to the next source of alpha).
  static AdapterMetadata parse(std::string_view json);

  // The alpha for a module named as in the file ("transformer.single_transformer_blocks.0.
  // attn.to_q"): its component's alpha_pattern entry (a key equal to the module name after
  // the component, or to its last dotted parts), else the component's lora_alpha, else the
  // unprefixed fields, matched the same way against the whole name.
  std::optional<float> alpha_for(std::string_view module) const;

  bool empty() const { return by_component_.empty(); }

 private:
  // "" for the unprefixed fields.
  std::map<std::string, AdapterAlphas, std::less<>> by_component_;
};

}  // namespace weightmap::lora_detail
