// The codec `weightmap lora merge` patches quantized base tensors with: ggml's when the CLI is
// built with the ggml adapter (WEIGHTMAP_GGML, the default), none otherwise (such bases are
// then refused with an error that says so).
#pragma once

#include <memory>

#include "weightmap/lora.hpp"

namespace weightmap::cli {

std::shared_ptr<const LoraQuantCodec> quantized_codec();

}  // namespace weightmap::cli
