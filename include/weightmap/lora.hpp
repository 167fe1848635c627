// LoRA adapters: reading them (kohya, PEFT/diffusers, LoCon, full differences, GGUF adapters),
// matching their modules to base tensors, and using them three ways:
//  - immediately, patching the loaded weights in place (W += scale * up x down), with undo
//    that drops the copy-on-write pages of mapped tensors instead of reading the model again;
//  - at runtime, as (down, up, scale) lists the engine adds to its matrix products;
//  - merged into a new model file, streaming.
// See docs/lora.md.
//
// This header includes the parts, one concern each:
#pragma once

#include "weightmap/lora_file.hpp"         // read_lora, LoraFile, LoraModule: reading
#include "weightmap/lora_match.hpp"        // match_lora, name rules, presets: matching
#include "weightmap/lora_merge.hpp"        // write_merged_model: merging into a file
#include "weightmap/lora_patcher.hpp"      // LoraPatcher: applying in place, and undoing
#include "weightmap/lora_quant_codec.hpp"  // LoraQuantCodec: patching quantized tensors
#include "weightmap/lora_runtime.hpp"      // lora_runtime_deltas: runtime deltas
#include "weightmap/lora_use.hpp"          // LoraUse, lora_requests, mark_lora_targets
