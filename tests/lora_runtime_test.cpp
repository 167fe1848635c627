// Runtime LoRAs: y = W x + sum scale * up (down x) on untouched base weights gives what the
// immediately patched weights give, within a stated float tolerance; after undo the patched
// model's outputs equal the base bit for bit.
#include <gtest/gtest.h>

#include "lora_fixtures.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/lora.hpp"

// In the fixtures' namespace (lora_fixtures.hpp): they are used unqualified.
namespace weightmap::lora_test {
namespace {

using testing::TempDir;

// y = W x with W [rows, cols] as stored, summed in f32 in column order.
std::vector<float> matvec(const TensorStorage& storage, std::uint64_t rows,
                          const std::vector<float>& x) {
  const auto w = as_floats(storage.dtype, storage.bytes);
  const std::size_t cols = x.size();
  std::vector<float> y(static_cast<std::size_t>(rows), 0.0f);
  for (std::size_t o = 0; o < y.size(); ++o) {
    for (std::size_t c = 0; c < cols; ++c) y[o] += w[o * cols + c] * x[c];
  }
  return y;
}

// y += scale * up (down x), or scale * full x for a diff.
void add_delta(const LoraDelta& delta, const std::vector<float>& x, std::vector<float>& y) {
  const std::size_t cols = static_cast<std::size_t>(delta.cols);
  if (delta.rank == 0) {
    for (std::size_t o = 0; o < y.size(); ++o) {
      float sum = 0;
      for (std::size_t c = 0; c < cols; ++c) sum += delta.full[o * cols + c] * x[c];
      y[o] += delta.scale * sum;
    }
    return;
  }
  std::vector<float> t(static_cast<std::size_t>(delta.rank), 0.0f);
  for (std::size_t r = 0; r < t.size(); ++r) {
    for (std::size_t c = 0; c < cols; ++c) t[r] += delta.down[r * cols + c] * x[c];
  }
  for (std::size_t o = 0; o < y.size(); ++o) {
    float sum = 0;
    for (std::size_t r = 0; r < t.size(); ++r) sum += delta.up[o * t.size() + r] * t[r];
    y[o] += delta.scale * sum;
  }
}

// Bound on |y_immediate - y_runtime| for row o: rounding the patched weights to `dtype` moves
// each by at most half an ulp (2^-24 relative for f32, 2^-11 for f16), and the f32 sums of
// both sides add a few f32 ulps; `relative` is stated per type below.
float tolerance(const TensorStorage& patched, std::uint64_t o, const std::vector<float>& x,
                float relative) {
  const auto w = as_floats(patched.dtype, patched.bytes);
  float magnitude = 0;
  for (std::size_t c = 0; c < x.size(); ++c) {
    magnitude += std::abs(w[static_cast<std::size_t>(o) * x.size() + c] * x[c]);
  }
  return relative * magnitude + 1e-6f;
}

void immediate_equals_runtime(DType dtype, float relative) {
  TempDir dir;
  const std::uint64_t rows = 24, cols = 40, rank = 4;
  write_tensors(dir / "base.safetensors", {random_tensor("a.weight", dtype, {rows, cols}, 1),
                                           random_tensor("b.weight", dtype, {rows, cols}, 2),
                                           random_tensor("c.weight", dtype, {rows, cols}, 3)});
  write_tensors(dir / "lora.safetensors",
                {random_tensor("lora_unet_a.lora_down.weight", DType::F16, {rank, cols}, 4, 0.5f),
                 random_tensor("lora_unet_a.lora_up.weight", DType::F16, {rows, rank}, 5, 0.5f),
                 {"lora_unet_a.alpha", DType::F32, {}, {2.0f}},
                 random_tensor("lora_unet_b.diff", DType::F16, {rows, cols}, 6, 0.1f)});
  const Model base = open_model(dir / "base.safetensors");
  auto lora = std::make_shared<const LoraFile>(read_lora(dir / "lora.safetensors"));
  const LoraUse use{lora, match_lora(*lora, base, sd_lora_name_rules(), true), 0.7f};
  const std::vector<float> x = random_values(cols, 7, 1.0f);

  // Runtime: a read-only mapping, never written.
  std::vector<TensorRequest> plain;
  for (const auto& info : base.tensors())
    plain.push_back({.name = info.name, .device = {.alignment = 1}});
  const LoadedModel runtime_model = load(base, plain);
  const auto deltas = lora_runtime_deltas(std::span(&use, 1));
  ASSERT_EQ(deltas.size(), 2u);
  EXPECT_EQ(deltas.at("a.weight").front().rank, rank);
  EXPECT_EQ(deltas.at("b.weight").front().rank, 0u);

  // Immediate: the same LoRA patched into a copy-on-write mapping.
  auto requests = lora_requests(base, std::span(&use, 1));
  for (auto& request : requests) request.device.alignment = 1;
  LoadedModel patched_model = load(base, requests);
  LoraPatcher patcher(base, patched_model);
  const LoraId id = patcher.apply(use);

  for (const char* name : {"a.weight", "b.weight", "c.weight"}) {
    const TensorStorage& original = *runtime_model.find(name);
    EXPECT_TRUE(original.mapped);
    EXPECT_EQ(original.mapping->access(), Access::read_only);
    std::vector<float> y_runtime = matvec(original, rows, x);
    if (const auto it = deltas.find(name); it != deltas.end()) {
      for (const auto& delta : it->second) add_delta(delta, x, y_runtime);
    }
    const TensorStorage& patched = *patched_model.find(name);
    const std::vector<float> y_immediate = matvec(patched, rows, x);
    for (std::uint64_t o = 0; o < rows; ++o) {
      EXPECT_NEAR(y_immediate[o], y_runtime[o], tolerance(patched, o, x, relative))
          << name << " row " << o;
    }
  }

  patcher.undo(id);
  for (const char* name : {"a.weight", "b.weight", "c.weight"}) {
    EXPECT_EQ(matvec(*patched_model.find(name), rows, x),
              matvec(*runtime_model.find(name), rows, x))
        << name << " after undo";
  }
}

// f32: weights rounded to 2^-24 relative plus f32 sums over 40 columns and rank 4.
TEST(LoraRuntime, ImmediateAndRuntimeAgreeForF32Weights) {
  immediate_equals_runtime(DType::F32, 1e-5f);
}

// f16: each patched weight is rounded to 2^-11 relative.
TEST(LoraRuntime, ImmediateAndRuntimeAgreeForF16Weights) {
  immediate_equals_runtime(DType::F16, 1e-3f);
}

}  // namespace
}  // namespace weightmap::lora_test
