// Binding: what bind() made, freed in the right order (ggml buffers before the mappings their
// tensors point into).
#include "ggml/binding_state.hpp"

namespace weightmap::ggml {

detail::BindingState::~BindingState() {
  for (ggml_backend_buffer_t buffer : buffers) ggml_backend_buffer_free(buffer);
}

Binding::Binding() : state_(std::make_unique<detail::BindingState>()) {}
Binding::~Binding() = default;
Binding::Binding(Binding&&) noexcept = default;
Binding& Binding::operator=(Binding&&) noexcept = default;

const BindReport& Binding::report() const noexcept { return state_->report; }

std::span<const ggml_backend_buffer_t> Binding::buffers() const noexcept { return state_->buffers; }

std::span<const TensorStorage> Binding::mapped_tensors() const noexcept { return state_->mapped; }

}  // namespace weightmap::ggml
