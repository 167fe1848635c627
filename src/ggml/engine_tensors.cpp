#include "weightmap/ggml.hpp"

namespace weightmap::ggml {

EngineTensors tensors_of(std::vector<ggml_context*> contexts) {
  EngineTensors out;
  for (ggml_context* context : contexts) {
    for (ggml_tensor* t = ggml_get_first_tensor(context); t != nullptr;
         t = ggml_get_next_tensor(context, t)) {
      out.by_name.emplace(ggml_get_name(t), t);
    }
  }
  out.contexts = std::move(contexts);
  return out;
}

}  // namespace weightmap::ggml
