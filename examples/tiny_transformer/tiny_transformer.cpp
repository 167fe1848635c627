#include "tiny_transformer/tiny_transformer.hpp"

#include <fmt/format.h>
#include <ggml-cpu.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap::examples {
namespace {

std::string block(std::int64_t layer, std::string_view what) {
  return "blk." + std::to_string(layer) + "." + std::string(what);
}

// Values in [-scale, scale), the same for any chunking of the writes.
float value_at(std::uint32_t seed, std::size_t tensor, std::uint64_t element, float scale) {
  std::uint64_t x = (static_cast<std::uint64_t>(seed) << 40) ^ (tensor << 32) ^ element;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return (static_cast<float>(x >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f) * scale;
}

}  // namespace

std::vector<TensorToWrite> tiny_transformer_tensors(const TinyTransformerConfig& c) {
  const auto d = static_cast<std::uint64_t>(c.d_model);
  const auto ff = static_cast<std::uint64_t>(c.d_ff);
  std::vector<TensorToWrite> out;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    out.push_back({block(l, "attn_norm.weight"), DType::F32, {d}});
    for (const char* m : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_out.weight"}) {
      out.push_back({block(l, m), DType::F16, {d, d}});
    }
    out.push_back({block(l, "ffn_norm.weight"), DType::F32, {d}});
    out.push_back({block(l, "ffn_up.weight"), DType::F16, {ff, d}});
    out.push_back({block(l, "ffn_up.bias"), DType::F32, {ff}});
    out.push_back({block(l, "ffn_down.weight"), DType::F16, {d, ff}});
    out.push_back({block(l, "ffn_down.bias"), DType::F32, {d}});
  }
  out.push_back({"output_norm.weight", DType::F32, {d}});
  out.push_back({"output.weight", DType::F16, {d, d}});
  return out;
}

void write_tiny_transformer(const std::string& path, const TinyTransformerConfig& config,
                            std::uint32_t seed, TinyTransformerLayout layout) {
  const auto tensors = tiny_transformer_tensors(config);
  std::vector<float> floats;
  const auto source = [&](std::size_t i, std::uint64_t offset, std::span<std::byte> out) {
    const TensorToWrite& t = tensors[i];
    const std::size_t element_bytes = t.dtype == DType::F16 ? 2 : 4;
    const bool norm = t.name.find("norm") != std::string::npos;
    // Norm weights near 1; matrices scaled by 1/sqrt(fan-in) so activations stay O(1).
    const float scale = norm ? 0.1f : 1.0f / std::sqrt(static_cast<float>(t.shape.back()));
    const std::uint64_t first = offset / element_bytes;
    const std::uint64_t count = out.size() / element_bytes;
    floats.resize(static_cast<std::size_t>(count));
    for (std::uint64_t e = 0; e < count; ++e) {
      floats[static_cast<std::size_t>(e)] =
          (norm ? 1.0f : 0.0f) + value_at(seed, i, first + e, scale);
    }
    convert(DType::F32, std::as_bytes(std::span(floats)), t.dtype, out, count);
  };
  SafetensorsWriteOptions options;
  if (layout == TinyTransformerLayout::aligned64) {
    options.data_alignment = 64;
    write_safetensors(path, tensors, source, options);
    return;
  }
  options.hugging_face_order = true;
  // With widths that are multiples of 8 every tensor's size is a multiple of 32 bytes, so all
  // tensors sit where the data area starts, mod 32: the metadata grows until that is off 32,
  // as in most files Hugging Face's writer makes.
  std::string note = "tiny transformer";
  for (;;) {
    options.metadata = {{"format", "pt"}, {"note", note}};
    if (write_safetensors(path, tensors, source, options).data_offset % 32 != 0) return;
    note += "........";
  }
}

TinyTransformerConfig tiny_transformer_config_of(const std::string& model_path,
                                                 std::int64_t n_heads, std::int64_t n_tokens) {
  const Model model = open_model(model_path);
  const auto shape = [&](const std::string& name) -> const std::vector<std::uint64_t>& {
    const TensorInfo* t = model.find(name);
    if (t == nullptr) {
      throw Error(ErrorCode::not_found, "the tiny transformer needs this tensor",
                  {model_path, name});
    }
    return t->shape;
  };
  TinyTransformerConfig config;
  config.d_model = static_cast<std::int64_t>(shape("output_norm.weight").at(0));
  config.d_ff = static_cast<std::int64_t>(shape(block(0, "ffn_up.weight")).at(0));
  config.n_layers = 0;
  while (model.find(block(config.n_layers, "attn_norm.weight")) != nullptr) ++config.n_layers;
  config.n_heads = n_heads;
  config.n_tokens = n_tokens;
  if (n_heads <= 0 || config.d_model % n_heads != 0) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{} heads do not divide the model width {}", n_heads, config.d_model),
                {model_path});
  }
  return config;
}

std::vector<float> tiny_transformer_input(const TinyTransformerConfig& config) {
  std::vector<float> x(static_cast<std::size_t>(config.d_model * config.n_tokens));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = value_at(7, 999, i, 1.0f);
  return x;
}

TinyTransformer::TinyTransformer(const std::string& model_path, const TinyTransformerConfig& config,
                                 const DeviceForWeight& device_for,
                                 const ggml::BindOptions& options)
    : config_(config) {
  const Model model = open_model(model_path);
  const auto tensors = tiny_transformer_tensors(config);

  // One no_alloc context per device: the adapter allocates each context on one buffer type.
  std::map<ggml_backend_dev_t, ggml_context*> context_of;
  std::map<std::string, ggml_backend_dev_t, std::less<>> device_of_name;
  for (const auto& t : tensors) {
    ggml_backend_dev_t device = device_for(t.name);
    auto [it, added] = context_of.emplace(device, nullptr);
    if (added) {
      ggml_init_params params{ggml_tensor_overhead() * tensors.size(), nullptr, true};
      it->second = ggml_init(params);
      contexts_.push_back(it->second);
    }
    // The output projection runs in q8_0: the file's f16 is quantized by the adapter.
    const ggml_type type = t.name == "output.weight" ? GGML_TYPE_Q8_0 : ggml::ggml_type_of(t.dtype);
    const auto ne = ggml::ne_of(t.shape);
    ggml_tensor* w = ggml_new_tensor(it->second, type, static_cast<int>(t.shape.size()), ne.data());
    ggml_set_name(w, t.name.c_str());
    weights_.by_name.emplace(t.name, w);
    weight_names_.emplace(w, t.name);
    if (t.name.ends_with(".attn_norm.weight") || t.name == "output_norm.weight") {
      layer_starts_.emplace(w, t.name);
    }
    device_of_name.emplace(t.name, device);
  }
  weights_.contexts = contexts_;
  binding_ = ggml::bind(
      model, weights_,
      [&](std::string_view name, const ggml_tensor&) {
        return ggml::TensorDevice{device_of_name.find(name)->second};
      },
      options);

  for (const auto& [device, context] : context_of) {
    if (ggml_backend_dev_type(device) == GGML_BACKEND_DEVICE_TYPE_CPU) continue;
    backends_.push_back(ggml_backend_dev_init(device, nullptr));
  }
  backends_.push_back(
      ggml_backend_dev_init(ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU), nullptr));
  sched_ = ggml_backend_sched_new(backends_.data(), nullptr, static_cast<int>(backends_.size()),
                                  GGML_DEFAULT_GRAPH_SIZE, false, false);
}

TinyTransformer::~TinyTransformer() {
  ggml_backend_sched_free(sched_);
  for (ggml_backend_t backend : backends_) ggml_backend_free(backend);
  binding_ = ggml::Binding();
  for (ggml_context* context : contexts_) ggml_free(context);
}

ggml_tensor* TinyTransformer::build(ggml_context* ctx, ggml_tensor* x) const {
  const std::int64_t d = config_.d_model;
  const std::int64_t heads = config_.n_heads;
  const std::int64_t head_dim = d / heads;
  const std::int64_t tokens = config_.n_tokens;
  const float eps = 1e-5f;
  const auto linear = [&](ggml_tensor* w, ggml_tensor* in) { return ggml_mul_mat(ctx, w, in); };
  const auto heads_first = [&](ggml_tensor* t) {  // [d, T] -> [head_dim, T, heads]
    return ggml_cont(
        ctx, ggml_permute(ctx, ggml_reshape_3d(ctx, t, head_dim, heads, tokens), 0, 2, 1, 3));
  };

  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    ggml_tensor* h =
        ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), weight(block(l, "attn_norm.weight")));
    ggml_tensor* q = heads_first(linear(weight(block(l, "attn_q.weight")), h));
    ggml_tensor* k = heads_first(linear(weight(block(l, "attn_k.weight")), h));
    // v as [T, head_dim, heads], so one mul_mat weighs the values.
    ggml_tensor* v = ggml_cont(
        ctx, ggml_permute(ctx,
                          ggml_reshape_3d(ctx, linear(weight(block(l, "attn_v.weight")), h),
                                          head_dim, heads, tokens),
                          1, 2, 0, 3));
    ggml_tensor* scores = ggml_soft_max_ext(ctx, ggml_mul_mat(ctx, k, q), nullptr,
                                            1.0f / std::sqrt(static_cast<float>(head_dim)), 0.0f);
    ggml_tensor* attended = ggml_mul_mat(ctx, v, scores);  // [head_dim, T, heads]
    attended =
        ggml_reshape_2d(ctx, ggml_cont(ctx, ggml_permute(ctx, attended, 0, 2, 1, 3)), d, tokens);
    x = ggml_add(ctx, x, linear(weight(block(l, "attn_out.weight")), attended));

    h = ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), weight(block(l, "ffn_norm.weight")));
    h = ggml_gelu(ctx, ggml_add(ctx, linear(weight(block(l, "ffn_up.weight")), h),
                                weight(block(l, "ffn_up.bias"))));
    h = ggml_add(ctx, linear(weight(block(l, "ffn_down.weight")), h),
                 weight(block(l, "ffn_down.bias")));
    x = ggml_add(ctx, x, h);
  }
  x = ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), weight("output_norm.weight"));
  return linear(weight("output.weight"), x);
}

namespace {

// A graph context sized for the forward graph; freed with the graph.
struct GraphContext {
  ggml_context* ctx;
  GraphContext() {
    ggml_init_params params{
        ggml_tensor_overhead() * GGML_DEFAULT_GRAPH_SIZE + ggml_graph_overhead(), nullptr, true};
    ctx = ggml_init(params);
  }
  ~GraphContext() { ggml_free(ctx); }
  GraphContext(const GraphContext&) = delete;
  GraphContext& operator=(const GraphContext&) = delete;
};

using WeightNames = std::map<const ggml_tensor*, std::string>;

// The name of the weight a node reads, or nullptr.
const std::string* weight_read_by(const ggml_tensor& node, const WeightNames& names) {
  for (const ggml_tensor* src : node.src) {
    const auto name = names.find(src);
    if (name != names.end()) return &name->second;
  }
  return nullptr;
}

// What the scheduler's eval callback needs to tell the caller which weight comes next.
struct Reaching {
  const TinyTransformer::ReachingLayer& callback;
  const WeightNames& layer_starts;
};

// The scheduler asks about each node before it computes it and runs the nodes it was not
// asked to stop at together: stopping at each node that reads a layer's first weight makes
// this the moment just before that weight is read.
bool reaching_weight(ggml_tensor* node, bool ask, void* user_data) {
  if (!ask) return true;  // computed: go on
  const auto& reaching = *static_cast<const Reaching*>(user_data);
  const std::string* weight = weight_read_by(*node, reaching.layer_starts);
  if (weight == nullptr) return false;
  reaching.callback(*weight);
  return true;
}

}  // namespace

std::vector<std::string> TinyTransformer::weight_order() const {
  const GraphContext graph_context;
  ggml_tensor* x =
      ggml_new_tensor_2d(graph_context.ctx, GGML_TYPE_F32, config_.d_model, config_.n_tokens);
  ggml_cgraph* graph = ggml_new_graph(graph_context.ctx);
  ggml_build_forward_expand(graph, build(graph_context.ctx, x));
  std::vector<std::string> order;
  std::set<const ggml_tensor*> seen;
  for (int i = 0; i < ggml_graph_n_nodes(graph); ++i) {
    for (const ggml_tensor* src : ggml_graph_node(graph, i)->src) {
      const auto name = weight_names_.find(src);
      if (name != weight_names_.end() && seen.insert(src).second) order.push_back(name->second);
    }
  }
  return order;
}

std::vector<float> TinyTransformer::forward(std::span<const float> input, int threads,
                                            const ReachingLayer& reaching) {
  const std::size_t expected = static_cast<std::size_t>(config_.d_model * config_.n_tokens);
  if (input.size() != expected) throw std::invalid_argument("input has the wrong size");
  ggml_backend_cpu_set_n_threads(backends_.back(), threads);

  const GraphContext graph_context;
  ggml_context* ctx = graph_context.ctx;
  ggml_tensor* x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, config_.d_model, config_.n_tokens);
  ggml_set_input(x);
  ggml_tensor* out = build(ctx, x);
  ggml_set_output(out);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, out);

  ggml_backend_sched_reset(sched_);
  if (!ggml_backend_sched_alloc_graph(sched_, graph)) {
    throw std::runtime_error("the scheduler could not allocate the graph");
  }
  ggml_backend_tensor_set(x, input.data(), 0, ggml_nbytes(x));
  Reaching reaching_state{reaching, layer_starts_};
  if (reaching) ggml_backend_sched_set_eval_callback(sched_, reaching_weight, &reaching_state);
  const ggml_status status = ggml_backend_sched_graph_compute(sched_, graph);
  ggml_backend_sched_set_eval_callback(sched_, nullptr, nullptr);
  std::vector<float> result(expected);
  if (status == GGML_STATUS_SUCCESS)
    ggml_backend_tensor_get(out, result.data(), 0, ggml_nbytes(out));
  ggml_backend_sched_reset(sched_);
  if (status != GGML_STATUS_SUCCESS) throw std::runtime_error("the graph failed to compute");
  return result;
}

}  // namespace weightmap::examples
