// bind() on a checkpoint laid out as Hugging Face's safetensors writer lays it out (tensors on
// 8-byte boundaries, rarely on 32): with the engine's tensors in the stored types and shapes,
// the CPU maps (nearly) every byte, and a graph over the mapped weights computes exactly what
// it computes over copied weights.
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "ggml/model_fixture.hpp"
#include "support/hugging_face_checkpoint.hpp"
#include "support/safetensors_bytes.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/model.hpp"

namespace weightmap::ggml {
namespace {

// The engine's weights: every tensor of the file, in its stored type and shape.
struct EngineWeights {
  test::Context context;
  EngineTensors tensors;

  explicit EngineWeights(const Model& model) : context(model.tensors().size()) {
    tensors.contexts = {context.get()};
    for (const auto& t : model.tensors()) {
      tensors.by_name[t.name] = context.add(t.name, ggml_type_of(t.dtype), t.shape);
    }
  }
};

Binding bind_on_cpu(const Model& model, const EngineWeights& weights, bool use_mmap) {
  BindOptions options;
  options.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
  return bind(
      model, weights.tensors,
      [](std::string_view, const ggml_tensor&) { return TensorDevice{test::cpu_device()}; },
      options);
}

ggml_tensor* activations(ggml_context* ctx, std::int64_t ne0, std::int64_t ne1, std::int64_t ne2,
                         std::uint32_t seed) {
  ggml_tensor* t = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, ne0, ne1, ne2);
  const auto values = test::ramp(static_cast<std::size_t>(ggml_nelements(t)), seed);
  std::memcpy(t->data, values.data(), ggml_nbytes(t));
  return t;
}

// What an SD engine does with each weight: linear layers multiply, 3x3 convolutions run
// through im2col, norms and biases scale and shift; position ids are read as they are. The
// outputs' bytes, in file order.
std::vector<std::byte> run_graph(const Model& model, const EngineWeights& weights) {
  ggml_init_params params{std::size_t{128} << 20, nullptr, false};
  ggml_context* ctx = ggml_init(params);
  std::vector<ggml_tensor*> outputs;
  std::uint32_t seed = 100;
  for (const auto& info : model.tensors()) {
    ggml_tensor* w = weights.tensors.by_name.at(info.name);
    ++seed;
    if (info.dtype == DType::I64) {
      outputs.push_back(ggml_cont(ctx, w));
    } else if (info.shape.size() == 4) {  // [out, in, 3, 3]
      ggml_tensor* x = activations(ctx, 6, 5, w->ne[2], seed);
      outputs.push_back(ggml_conv_2d(ctx, w, x, 1, 1, 1, 1, 1, 1));
    } else if (info.shape.size() == 2) {  // [out, in]
      outputs.push_back(ggml_mul_mat(ctx, w, activations(ctx, w->ne[0], 3, 1, seed)));
    } else {  // norms and biases
      ggml_tensor* x = activations(ctx, w->ne[0], 3, 1, seed);
      outputs.push_back(ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, 1e-5f), w), w));
    }
  }
  ggml_cgraph* graph = ggml_new_graph_custom(ctx, 16 * outputs.size() + 64, false);
  for (ggml_tensor* out : outputs) ggml_build_forward_expand(graph, out);
  ggml_backend_t cpu = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(cpu, 2);
  EXPECT_EQ(ggml_backend_graph_compute(cpu, graph), GGML_STATUS_SUCCESS);
  ggml_backend_free(cpu);
  std::vector<std::byte> bytes;
  for (const ggml_tensor* out : outputs) {
    const auto* data = static_cast<const std::byte*>(out->data);
    bytes.insert(bytes.end(), data, data + ggml_nbytes(out));
  }
  ggml_free(ctx);
  return bytes;
}

TEST(GgmlHuggingFaceLayout, BindToCpuMapsTheCheckpointAndComputesAsOnCopiedWeights) {
  weightmap::testing::TempDir dir;
  const std::string path = dir / "sd-hf.safetensors";
  weightmap::testing::write_hugging_face_checkpoint(path, std::uint64_t{6} << 20, 150);
  const Model model = open_model(path);

  // The layout the test is about: f16, f32 and i64 tensors, most of them off 32 bytes.
  std::uint64_t total = 0;
  std::size_t off32 = 0;
  std::set<DType> types;
  for (const auto& t : model.tensors()) {
    total += t.nbytes;
    off32 += t.offset % 32 != 0 ? 1 : 0;
    types.insert(t.dtype);
  }
  EXPECT_EQ(types, (std::set<DType>{DType::F16, DType::F32, DType::I64}));
  EXPECT_GT(off32, model.tensors().size() * 9 / 10);

  EngineWeights mapped_weights(model);
  const Binding mapped = bind_on_cpu(model, mapped_weights, true);
  const LoadReport& report = mapped.report().load;
  EXPECT_GE(static_cast<double>(report.mapped_bytes), 0.99 * static_cast<double>(total));
  EXPECT_EQ(report.mapped_tensors, model.tensors().size());
  EXPECT_EQ(report.reasons.count(Reason::misaligned_for_device), 0u);
  EXPECT_EQ(mapped.report().allocated_buffers, 0u);

  EngineWeights copied_weights(model);
  const Binding copied = bind_on_cpu(model, copied_weights, false);
  EXPECT_EQ(copied.report().load.mapped_tensors, 0u);

  const auto from_mapped = run_graph(model, mapped_weights);
  const auto from_copied = run_graph(model, copied_weights);
  ASSERT_FALSE(from_mapped.empty());
  EXPECT_TRUE(from_mapped == from_copied) << "outputs over mapped weights differ from copied";
}

}  // namespace
}  // namespace weightmap::ggml
