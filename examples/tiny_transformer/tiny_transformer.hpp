// A small transformer engine on ggml whose weights come from a safetensors file through
// weightmap::ggml: RMS norms, multi-head self-attention, a GELU feed-forward block with biases,
// residuals, and a q8_0 output projection that the adapter quantizes from the file's f16.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/ggml.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::examples {

struct TinyTransformerConfig {
  std::int64_t d_model = 64;
  std::int64_t n_heads = 4;
  std::int64_t d_ff = 256;
  std::int64_t n_layers = 2;
  std::int64_t n_tokens = 8;
};

// The file's tensors: matrices f16 (PyTorch layout, [out, in]), norms and biases f32.
std::vector<TensorToWrite> tiny_transformer_tensors(const TinyTransformerConfig& config);

// How the file lays out its tensors.
enum class TinyTransformerLayout {
  aligned64,     // in model order after a header padded to 64 bytes: every tensor 64-aligned
  hugging_face,  // as Hugging Face's writer does (element size, then name; header padded to 8),
                 // with the header's metadata sized so tensors sit 8 or more bytes off 32
};

// Writes the model with deterministic weights.
void write_tiny_transformer(const std::string& path, const TinyTransformerConfig& config,
                            std::uint32_t seed = 1,
                            TinyTransformerLayout layout = TinyTransformerLayout::aligned64);

// The config of a model file holding the tiny transformer's tensors in any layout (written by
// write_tiny_transformer, realigned, or converted by another tool): sizes from the tensors'
// shapes; heads and tokens are not in the file. Throws Error(not_found) for a missing tensor
// and Error(invalid_argument) when n_heads does not divide the model width.
TinyTransformerConfig tiny_transformer_config_of(const std::string& model_path,
                                                 std::int64_t n_heads, std::int64_t n_tokens);

// Deterministic input activations (d_model x n_tokens).
std::vector<float> tiny_transformer_input(const TinyTransformerConfig& config);

// Which device holds a weight.
using DeviceForWeight = std::function<ggml_backend_dev_t(std::string_view name)>;

class TinyTransformer {
 public:
  // Opens the model, creates one weight context per device and binds it. Throws
  // weightmap::Error from open_model or bind.
  TinyTransformer(const std::string& model_path, const TinyTransformerConfig& config,
                  const DeviceForWeight& device_for, const ggml::BindOptions& options = {});
  ~TinyTransformer();
  TinyTransformer(const TinyTransformer&) = delete;
  TinyTransformer& operator=(const TinyTransformer&) = delete;

  // Called with the name of a layer's first weight just before the graph reads it.
  using ReachingLayer = std::function<void(std::string_view first_weight)>;

  // One forward pass: input and output are d_model x n_tokens floats. With `reaching`, the
  // graph runs in pieces, one per layer (and one for the output), and the callback comes
  // before each (a Prefetcher's reached(), say). Once per layer, not per weight: each piece
  // costs the CPU backend a start and a synchronisation of its threads, which on a busy
  // 2-core machine measured seconds per run at one piece per weight.
  std::vector<float> forward(std::span<const float> input, int threads = 2,
                             const ReachingLayer& reaching = {});

  // The weights in the order the forward graph first reads them (each once): the order to
  // give a Prefetcher.
  std::vector<std::string> weight_order() const;

  const ggml::BindReport& report() const { return binding_.report(); }
  const ggml::Binding& binding() const { return binding_; }

 private:
  ggml_tensor* weight(const std::string& name) const { return weights_.by_name.at(name); }
  ggml_tensor* build(ggml_context* ctx, ggml_tensor* x) const;

  TinyTransformerConfig config_;
  std::vector<ggml_context*> contexts_;
  ggml::EngineTensors weights_;
  std::map<const ggml_tensor*, std::string> weight_names_;
  std::map<const ggml_tensor*, std::string> layer_starts_;  // each layer's first weight
  ggml::Binding binding_;
  std::vector<ggml_backend_t> backends_;  // CPU last, as the scheduler wants
  ggml_backend_sched_t sched_ = nullptr;
};

}  // namespace weightmap::examples
