#include "cli/quantized_codec.hpp"

#if WEIGHTMAP_CLI_WITH_GGML
#include "weightmap/ggml_lora.hpp"
#endif

namespace weightmap::cli {

std::shared_ptr<const LoraQuantCodec> quantized_codec() {
#if WEIGHTMAP_CLI_WITH_GGML
  return ggml::lora_codec();
#else
  return nullptr;
#endif
}

}  // namespace weightmap::cli
