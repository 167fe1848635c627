// One LoRA as used on a base model (the file, its match, a multiplier), and the load requests
// that let LoRAs patch the base in place. See docs/lora.md.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "weightmap/export.hpp"
#include "weightmap/lora_file.hpp"
#include "weightmap/lora_match.hpp"
#include "weightmap/model.hpp"
#include "weightmap/tensor_request.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// One LoRA as used on a base model.
struct LoraUse {
  std::shared_ptr<const LoraFile> lora;
  LoraMatch match;
  float multiplier = 1.0f;
};

// Sets writes_in_place on the requests of exactly the tensors `uses` patch, so the planner
// maps those copy-on-write (and only files holding them); adds a request for a target
// nobody asked for.
void mark_lora_targets(std::vector<TensorRequest>& requests, std::span<const LoraUse> uses);

// One request per base tensor (file order), writes_in_place for the LoRA targets only.
std::vector<TensorRequest> lora_requests(const Model& base, std::span<const LoraUse> uses);

}  // namespace weightmap
WEIGHTMAP_API_END
