// Runtime LoRAs in a ggml graph: linear layers computed with mul_mat_lora on the
// untouched read-only mapping give what the same layers give with the LoRAs patched in place
// (LoraPatcher on a copy-on-write mapping), within a tolerance derived below; after undo the
// patched model's outputs equal the base's bit for bit.
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "ggml/model_fixture.hpp"
#include "lora_fixtures.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/ggml_lora.hpp"

namespace weightmap::ggml {
namespace {

using lora_test::random_tensor;
using testing::TempDir;

constexpr std::int64_t kTokens = 3;
// Graphs chain these as linear layers: x [64] -> l1 [48, 64] -> l2 [40, 48]; l3 [48, 64] has
// no LoRA.
const std::vector<std::pair<std::string, std::vector<std::uint64_t>>> kTensors = {
    {"l1.weight", {48, 64}}, {"l2.weight", {40, 48}}, {"l3.weight", {48, 64}}};
using Layers = std::vector<std::string>;

// ggml tensors over a loaded model's bytes (mapped or not), each in a CPU buffer wrapping them.
class WeightTensors {
 public:
  explicit WeightTensors(const LoadedModel& loaded) : loaded_(loaded) {
    for (const auto& [name, shape] : kTensors) {
      const TensorStorage& storage = *loaded.find(name);
      ggml_tensor* t = context_.add(name, ggml_type_of(storage.dtype), storage.shape);
      // ggml wants a void*; the graphs only read weights (a read-only mapping would fault).
      void* data = const_cast<std::byte*>(storage.bytes.data());
      buffers_.push_back(ggml_backend_cpu_buffer_from_ptr(data, storage.bytes.size()));
      ggml_backend_tensor_alloc(buffers_.back(), t, data);
      by_name_.emplace(name, t);
    }
  }
  ~WeightTensors() {
    for (ggml_backend_buffer_t buffer : buffers_) ggml_backend_buffer_free(buffer);
  }
  WeightTensors(const WeightTensors&) = delete;
  WeightTensors& operator=(const WeightTensors&) = delete;

  ggml_tensor* operator[](const std::string& name) const { return by_name_.at(name); }
  const TensorStorage& storage(const std::string& name) const { return *loaded_.find(name); }

 private:
  const LoadedModel& loaded_;
  test::Context context_;
  std::vector<ggml_backend_buffer_t> buffers_;
  std::map<std::string, ggml_tensor*> by_name_;
};

std::vector<float> forward(const WeightTensors& weights, const LoraGraphWeights& lora,
                           const std::vector<float>& input, const Layers& layers) {
  ggml_init_params params{std::size_t{4} << 20, nullptr, false};
  ggml_context* ctx = ggml_init(params);
  ggml_tensor* x = ggml_new_tensor_2d(
      ctx, GGML_TYPE_F32, static_cast<std::int64_t>(weights.storage(layers[0]).shape[1]), kTokens);
  std::memcpy(x->data, input.data(), ggml_nbytes(x));
  for (const auto& name : layers) x = mul_mat_lora(ctx, weights[name], x, name, lora);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, x);
  ggml_backend_t backend = ggml_backend_cpu_init();
  EXPECT_EQ(ggml_backend_graph_compute(backend, graph), GGML_STATUS_SUCCESS);
  std::vector<float> out(static_cast<std::size_t>(ggml_nelements(x)));
  std::memcpy(out.data(), x->data, ggml_nbytes(x));
  ggml_backend_free(backend);
  ggml_free(ctx);
  return out;
}

// |W| + |sum of the layer's deltas|, element by element, in double.
std::vector<double> magnitude(const TensorStorage& base, const std::vector<LoraDelta>* deltas) {
  const auto w = lora_test::as_floats(base.dtype, base.bytes);
  std::vector<double> delta(w.size(), 0.0);
  for (const LoraDelta& d : deltas ? std::span(*deltas) : std::span<const LoraDelta>()) {
    for (std::size_t e = 0; e < w.size(); ++e) {
      const std::size_t o = e / d.cols, c = e % d.cols;
      double sum = 0;
      if (d.rank == 0) sum = d.full[e];
      for (std::size_t r = 0; r < d.rank; ++r)
        sum += double{d.up[o * d.rank + r]} * d.down[r * d.cols + c];
      delta[e] += d.scale * sum;
    }
  }
  std::vector<double> out(w.size());
  for (std::size_t e = 0; e < w.size(); ++e) out[e] = std::abs(double{w[e]}) + std::abs(delta[e]);
  return out;
}

// A layer-by-layer bound on |y_immediate - y_runtime|. Layer k adds at most rel * m_k, where
// m_k = (|W_k| + |D_k|) m_{k-1} (m_0 = |x|, D_k the layer's summed deltas), and passes on the
// error of its input scaled by at most |W_k| + |D_k|; over n layers that is n rel m_n.
std::vector<double> tolerance(const LoadedModel& base,
                              const std::map<std::string, std::vector<LoraDelta>>& deltas,
                              const std::vector<float>& input, const Layers& layers, double rel) {
  std::vector<double> m(input.size());
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = std::abs(double{input[i]});
  for (const auto& name : layers) {
    const auto it = deltas.find(name);
    const TensorStorage& weight = *base.find(name);
    const auto a = magnitude(weight, it == deltas.end() ? nullptr : &it->second);
    const auto out = static_cast<std::size_t>(weight.shape[0]);
    const auto in = static_cast<std::size_t>(weight.shape[1]);
    std::vector<double> next(out * kTokens, 0.0);
    for (std::size_t t = 0; t < static_cast<std::size_t>(kTokens); ++t) {
      for (std::size_t o = 0; o < out; ++o) {
        for (std::size_t c = 0; c < in; ++c) next[t * out + o] += a[o * in + c] * m[t * in + c];
      }
    }
    m = std::move(next);
  }
  for (double& v : m) v = static_cast<double>(layers.size()) * rel * v + 1e-6;
  return m;
}

void immediate_equals_runtime(DType dtype, double rel, const Layers& layers) {
  TempDir dir;
  std::vector<test::FloatTensor> base_tensors;
  std::uint32_t seed = 1;
  for (const auto& [name, shape] : kTensors) {
    base_tensors.push_back({name, dtype, shape, test::ramp(shape[0] * shape[1], seed++)});
  }
  test::write_model(dir / "base.safetensors", base_tensors);  // data aligned to 32 bytes
  // A: a low-rank l1 (alpha 2, rank 4) and a full difference for l2; B: a low-rank l2.
  // l2 gets two deltas, in order.
  lora_test::write_tensors(
      dir / "a.safetensors",
      {random_tensor("lora_unet_l1.lora_down.weight", DType::F16, {4, 64}, 11, 0.5f),
       random_tensor("lora_unet_l1.lora_up.weight", DType::F16, {48, 4}, 12, 1.0f),
       {"lora_unet_l1.alpha", DType::F32, {}, {2.0f}},
       random_tensor("lora_unet_l2.diff", DType::F16, {40, 48}, 13, 0.1f)});
  lora_test::write_tensors(
      dir / "b.safetensors",
      {random_tensor("lora_unet_l2.lora_down.weight", DType::F32, {3, 48}, 14, 0.5f),
       random_tensor("lora_unet_l2.lora_up.weight", DType::F32, {40, 3}, 15, 0.5f)});
  const Model base = open_model(dir / "base.safetensors");
  std::vector<LoraUse> uses;
  for (const char* file : {"a.safetensors", "b.safetensors"}) {
    auto lora = std::make_shared<const LoraFile>(read_lora(dir / file));
    uses.push_back({lora, match_lora(*lora, base, sd_lora_name_rules(), true), 0.8f});
  }
  const std::vector<float> input = test::ramp(base.find(layers[0])->shape[1] * kTokens, 99);

  // Runtime: the read-only mapping, never written; the factors in their own CPU buffer.
  std::vector<TensorRequest> plain;
  for (const auto& info : base.tensors()) plain.push_back({.name = info.name});
  const LoadedModel runtime_model = load(base, plain);
  const WeightTensors runtime_weights(runtime_model);
  const auto deltas = lora_runtime_deltas(uses);
  const LoraGraphWeights lora(deltas);
  ASSERT_EQ(lora.find("l2.weight").size(), 2u);
  EXPECT_EQ(lora.find("l3.weight").size(), 0u);
  EXPECT_TRUE(ggml_backend_buffer_is_host(lora.buffer()));
  const auto y_base = forward(runtime_weights, LoraGraphWeights(), input, layers);
  const auto y_runtime = forward(runtime_weights, lora, input, layers);
  // A tensor without deltas gets the plain product.
  const auto input_l3 = test::ramp(64 * kTokens, 98);
  EXPECT_EQ(forward(runtime_weights, lora, input_l3, {"l3.weight"}),
            forward(runtime_weights, LoraGraphWeights(), input_l3, {"l3.weight"}));

  // Immediate: the same LoRAs patched into a copy-on-write mapping.
  LoadedModel patched_model = load(base, lora_requests(base, uses));
  const WeightTensors patched_weights(patched_model);
  EXPECT_EQ(forward(patched_weights, LoraGraphWeights(), input, layers), y_base) << "before apply";
  LoraPatcher patcher(base, patched_model);
  for (const LoraUse& use : uses) patcher.apply(use);
  const auto y_immediate = forward(patched_weights, LoraGraphWeights(), input, layers);

  const auto bound = tolerance(runtime_model, deltas, input, layers, rel);
  ASSERT_EQ(y_runtime.size(), bound.size());
  double largest_change = 0;
  double largest_bound = 0;
  for (std::size_t i = 0; i < bound.size(); ++i) {
    EXPECT_NEAR(y_immediate[i], y_runtime[i], bound[i]) << i;
    largest_change = std::max(largest_change, std::abs(double{y_runtime[i]} - y_base[i]));
    largest_bound = std::max(largest_bound, bound[i]);
  }
  // The bound is far below what the LoRAs do, so a wrong delta could not pass.
  EXPECT_GT(largest_change, 10 * largest_bound);

  for (const auto& storage : runtime_model.tensors) {
    EXPECT_EQ(storage.mapping->access(), Access::read_only) << storage.name;
  }
  patcher.undo_all();
  EXPECT_EQ(forward(patched_weights, LoraGraphWeights(), input, layers), y_base) << "after undo";
}

// f32 weights: the patched weights are rounded to f32 (2^-24 relative) and either side sums
// at most 64 products in f32, each sum off by at most 64 * 2^-24 = 3.8e-6 of its magnitude.
TEST(GgmlLoraGraph, ImmediateAndRuntimeAgreeForF32Weights) {
  immediate_equals_runtime(DType::F32, 1e-5, {"l1.weight", "l2.weight"});
}

// f16 weights: the patched weights are rounded to f16 (2^-11 relative); ggml's f16 kernels
// round each layer's input to f16 on both sides (2 x 2^-11), while the runtime delta reads
// the unrounded input (2^-11): 4 x 2^-11 ~ 2e-3. One layer at a time: over two layers this
// worst-case bound would come near what the LoRAs change.
TEST(GgmlLoraGraph, ImmediateAndRuntimeAgreeForF16Weights) {
  immediate_equals_runtime(DType::F16, 2e-3, {"l1.weight"});
  immediate_equals_runtime(DType::F16, 2e-3, {"l2.weight"});
}

TEST(GgmlLoraGraph, FactorsForAnotherShapeAreAnErrorNamingTheTensor) {
  std::map<std::string, std::vector<LoraDelta>> deltas;
  deltas["l1.weight"].push_back({.rows = 48,
                                 .cols = 64,
                                 .rank = 2,
                                 .down = std::vector<float>(2 * 64, 1.0f),
                                 .up = std::vector<float>(48 * 2, 1.0f),
                                 .scale = 0.5f,
                                 .base_rows = 48});
  const LoraGraphWeights lora(deltas);
  ASSERT_EQ(lora.find("l1.weight").size(), 1u);
  EXPECT_EQ(lora.find("l1.weight")[0].down->ne[0], 64);  // down [rank, cols] is ne [cols, rank]
  EXPECT_EQ(lora.find("l1.weight")[0].up->ne[1], 48);    // up [rows, rank] is ne [rank, rows]

  ggml_init_params params{std::size_t{1} << 20, nullptr, true};
  ggml_context* ctx = ggml_init(params);
  ggml_tensor* w = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 40, 48);
  ggml_tensor* x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 40, 1);
  try {
    mul_mat_lora(ctx, w, x, "l1.weight", lora);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "the LoRA factors are for a [48, 64] matrix; the graph's weight has ne [40, 48, 1, "
              "1] (tensor l1.weight)");
  }
  ggml_free(ctx);

  deltas["l1.weight"].front().up.pop_back();
  try {
    LoraGraphWeights broken(deltas);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              "the LoRA delta's up factor has 95 values, not the 48 x 2 of its shape (tensor "
              "l1.weight)");
  }
}

}  // namespace
}  // namespace weightmap::ggml
