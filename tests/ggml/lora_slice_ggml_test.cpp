// LoRA modules on slices of fused tensors with ggml: q8_0 bases patched in place through
// lora_codec() and merged, compared with numpy's reference (gguf-py's q8_0, which matches
// ggml's reference quantizer), undo with the file's bytes; and runtime slices in a graph
// (mul_mat_lora, adding to rows with ggml_acc and with a padded add) against the merged
// weights' products. Fixtures: tests/lora_slice_fixtures.hpp.
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "ggml/lora_rows.hpp"
#include "lora_slice_fixtures.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/ggml_lora.hpp"

namespace weightmap {
namespace {

using namespace lora_slice_test;
using testing::TempDir;

using Reference = std::map<std::string, std::vector<double>>;

std::vector<std::byte> file_bytes(const std::string& path, const TensorInfo& info) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(info.offset));
  std::vector<std::byte> out(static_cast<std::size_t>(info.nbytes));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
  return out;
}

std::vector<std::byte> bytes_of(const LoadedModel& loaded, const std::string& name) {
  const auto bytes = loaded.find(name)->bytes;
  return {bytes.begin(), bytes.end()};
}

// --- q8_0 bases ------------------------------------------------------------------------------

constexpr std::uint64_t kQ8Cols = 64;  // whole q8_0 blocks of 32; the row slices stay as in Flux
constexpr std::uint64_t kQ8RowBytes = kQ8Cols / 32 * 34;
// LoRAs 16 times as strong as the float tests' (each delta up to 2^-1): q8_0 steps are about
// 2^-7 here, and a delta must move elements by many of them for a misplaced one to show.
constexpr float kQ8Strength = 16.0f;

std::vector<float> dequantize(std::span<const std::byte> bytes, std::uint64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  ggml_get_type_traits(GGML_TYPE_Q8_0)
      ->to_float(bytes.data(), out.data(), static_cast<std::int64_t>(n));
  return out;
}

struct Q8Fixture {
  TempDir dir;
  Model base;
  std::shared_ptr<const LoraFile> a, b;
  LoraUse use_a, use_b;

  Q8Fixture() {
    std::vector<TensorToWrite> layout;
    std::vector<std::vector<std::byte>> bytes;
    std::uint32_t seed = 1;
    for (const BaseShape& shape : kBase) {
      const auto values = base_values(shape.rows * kQ8Cols, seed++, DType::F32);
      std::vector<std::byte> q(static_cast<std::size_t>(shape.rows * kQ8RowBytes));
      ggml_quantize_chunk(GGML_TYPE_Q8_0, values.data(), q.data(), 0,
                          static_cast<std::int64_t>(shape.rows), kQ8Cols, nullptr);
      layout.push_back({shape.name, DType::Q8_0, {shape.rows, kQ8Cols}});
      bytes.push_back(std::move(q));
    }
    lora_test::write_tensor_bytes(path(), layout, bytes, {}, true);
    base = open_model(path());
    a = write_lora(dir.path().string(), kLoraA, 100, kQ8Cols, kQ8Strength);
    b = write_lora(dir.path().string(), kLoraB, 200, kQ8Cols, kQ8Strength);
    use_a = {a, slice_match(*a, kLoraA, base), kLoraA.multiplier};
    use_b = {b, slice_match(*b, kLoraB, base), kLoraB.multiplier};
  }

  std::string path() const { return dir / "base.gguf"; }

  LoadedModel load_model() const {
    const std::vector<LoraUse> uses = {use_a, use_b};
    return load(base, lora_requests(base, uses));
  }

  // Why two steps (d = the block's scale, amax / 127): each requantization lands within half
  // a step of what it quantizes. What weightmap and the reference quantize differ by the f32
  // rounding of the delta (far below a step), plus, for a second LoRA on the same rows, up
  // to one step that the first requantization may have rounded the other way: at most
  // 1/2 + 1/2 + 1 steps. d itself may differ by its f16 rounding and a step of amax (a few
  // percent): 2.1 d. Rows no module patches must keep the file's bytes.
  void expect_reference(const std::function<std::vector<std::byte>(const std::string&)>& bytes,
                        const Reference& reference, const std::vector<const SliceLora*>& loras,
                        const std::string& when) const {
    std::size_t moved = 0;
    for (const BaseShape& shape : kBase) {
      const auto got = bytes(shape.name);
      const auto file = file_bytes(path(), *base.find(shape.name));
      const auto values = dequantize(got, shape.rows * kQ8Cols);
      const auto before = dequantize(file, shape.rows * kQ8Cols);
      const auto& want = reference.at(shape.name);
      const auto untouched = untouched_rows(shape.name, shape.rows, loras);
      std::size_t outside = 0;
      for (std::uint64_t r = 0; r < shape.rows; ++r) {
        const auto row = static_cast<std::ptrdiff_t>(r * kQ8RowBytes);
        if (untouched[r]) {
          EXPECT_TRUE(
              std::equal(got.begin() + row, got.begin() + row + kQ8RowBytes, file.begin() + row))
              << when << ": " << shape.name << " row " << r << " is patched by no module";
          continue;
        }
        for (std::uint64_t block = 0; block < kQ8Cols / 32; ++block) {
          const auto first = static_cast<std::size_t>(r * kQ8Cols + block * 32);
          double amax = 0;
          for (std::size_t i = first; i < first + 32; ++i) amax = std::max(amax, std::abs(want[i]));
          const double tolerance = 2.1 * amax / 127;
          for (std::size_t i = first; i < first + 32; ++i) {
            if (std::abs(values[i] - want[i]) > tolerance) ++outside;
            if (std::abs(before[i] - want[i]) > 4 * tolerance) ++moved;
          }
        }
      }
      EXPECT_EQ(outside, 0u) << when << ": elements of " << shape.name
                             << " more than two steps from the reference";
    }
    EXPECT_GT(moved, 100u) << when << ": the LoRAs must move elements well past the tolerance";
  }
};

TEST(GgmlLoraSlices, Q8_0SlicesInPlaceAndMergedMatchTheReferenceAndUndoGivesTheFileBack) {
  const Q8Fixture f;
  const Reference ref_a =
      reference_merge(f.path(), f.dir.path().string(), "ref_a", {&kLoraA}, kQ8Cols);
  const Reference ref_ab =
      reference_merge(f.path(), f.dir.path().string(), "ref_ab", {&kLoraA, &kLoraB}, kQ8Cols);
  const Reference ref_b =
      reference_merge(f.path(), f.dir.path().string(), "ref_b", {&kLoraB}, kQ8Cols);
  LoraApplyOptions options;
  options.quantized = ggml::lora_codec();

  LoadedModel loaded = f.load_model();
  EXPECT_EQ(loaded.find(kQkv)->mapping->access(), Access::copy_on_write);
  const auto in_loaded = [&](const std::string& name) { return bytes_of(loaded, name); };
  LoraPatcher patcher(f.base, loaded, options);
  const LoraId id_a = patcher.apply(f.use_a);
  f.expect_reference(in_loaded, ref_a, {&kLoraA}, "A");
  patcher.apply(f.use_b);
  f.expect_reference(in_loaded, ref_ab, {&kLoraA, &kLoraB}, "A then B");

  // The merge writes what the in-place patch holds, byte for byte.
  const std::string merged_path = f.dir / "merged.gguf";
  LoraMergeOptions merge;
  merge.format = FileFormat::gguf;
  merge.chunk_bytes = 1000;  // chunk edges inside rows and slices
  merge.quantized = ggml::lora_codec();
  const std::vector<LoraUse> uses = {f.use_a, f.use_b};
  write_merged_model(f.base, uses, merged_path, merge);
  const Model merged = open_model(merged_path);
  for (const BaseShape& shape : kBase) {
    EXPECT_EQ(file_bytes(merged_path, *merged.find(shape.name)), in_loaded(shape.name))
        << shape.name << ": the merge and the in-place patch differ";
  }

  // Undoing A leaves B on its rows: bit for bit what B alone gives.
  patcher.undo(id_a);
  f.expect_reference(in_loaded, ref_b, {&kLoraB}, "A undone");
  LoadedModel only_b = f.load_model();
  LoraPatcher(f.base, only_b, options).apply(f.use_b);
  for (const BaseShape& shape : kBase) {
    EXPECT_EQ(in_loaded(shape.name), bytes_of(only_b, shape.name))
        << shape.name << " after undoing A differs from B alone";
  }
  patcher.undo_all();
  for (const BaseShape& shape : kBase) {
    EXPECT_EQ(in_loaded(shape.name), file_bytes(f.path(), *f.base.find(shape.name)))
        << shape.name << " differs from the file after undo";
  }
}

// --- Runtime slices in a graph ---------------------------------------------------------------

constexpr std::int64_t kTokens = 3;

struct GraphOutputs {
  std::vector<float> runtime, merged, base;  // [kTokens][rows], token-major
};

// One tensor's products for input x ([kTokens][kDim]): W x with the deltas added as
// `how` adds them, W' x (the merged weights) and W x.
GraphOutputs products(DType dtype, const std::vector<std::byte>& w,
                      const std::vector<std::byte>& w_merged, std::uint64_t rows,
                      const std::string& name, const ggml::LoraGraphWeights& lora,
                      const std::vector<float>& x, ggml::detail::RowsAdd how) {
  ggml_init_params params{std::size_t{8} << 20, nullptr, false};
  ggml_context* ctx = ggml_init(params);
  const auto type = static_cast<ggml_type>(dtype);
  const auto r = static_cast<std::int64_t>(rows);
  ggml_tensor* weight = ggml_new_tensor_2d(ctx, type, kDim, r);
  ggml_tensor* weight_merged = ggml_new_tensor_2d(ctx, type, kDim, r);
  ggml_tensor* input = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, kDim, kTokens);
  std::memcpy(weight->data, w.data(), w.size());
  std::memcpy(weight_merged->data, w_merged.data(), w_merged.size());
  std::memcpy(input->data, x.data(), ggml_nbytes(input));
  ggml_tensor* y_runtime = ggml::detail::mul_mat_lora(ctx, weight, input, name, lora, how);
  ggml_tensor* y_merged = ggml_mul_mat(ctx, weight_merged, input);
  ggml_tensor* y_base = ggml_mul_mat(ctx, weight, input);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  for (ggml_tensor* t : {y_runtime, y_merged, y_base}) ggml_build_forward_expand(graph, t);
  ggml_backend_t backend = ggml_backend_cpu_init();
  // One thread: the graphs are tiny, and spinning threads crawl on a loaded machine.
  ggml_backend_cpu_set_n_threads(backend, 1);
  EXPECT_EQ(ggml_backend_graph_compute(backend, graph), GGML_STATUS_SUCCESS);
  GraphOutputs out;
  for (auto [t, v] : {std::pair{y_runtime, &out.runtime}, std::pair{y_merged, &out.merged},
                      std::pair{y_base, &out.base}}) {
    v->resize(static_cast<std::size_t>(ggml_nelements(t)));
    std::memcpy(v->data(), t->data, ggml_nbytes(t));
  }
  ggml_backend_free(backend);
  ggml_free(ctx);
  return out;
}

struct RuntimeCase {
  DType dtype;
  ggml::detail::RowsAdd how;
};

class GgmlLoraSliceGraph : public ::testing::TestWithParam<RuntimeCase> {};

// The bound on |y_runtime - y_merged| per output, with S = x's sum of magnitudes (weights and
// every value of W' lie in [0.5, 1), deltas are at most 2^-5 per LoRA, factors below 1):
//  - W' is within one step u of W + delta (lora_slice_fixtures.hpp): u S;
//  - f16 weights: ggml rounds x to f16 (2^-11) for the weight products, not for the delta's:
//    the deltas (2 x 2^-5) times that rounding, 2^-15 S, and u S grows by 2^-11;
//  - ggml's f32 sums: W x and W' x, kDim products each, within kDim 2^-24 S; the delta's
//    (down x, rank terms of up, the scale, the add) a few more 2^-24 S of a 2^-4 magnitude:
//    (2 kDim + 8) 2^-24 S.
// Rows no delta adds to come out of the same ggml_mul_mat untouched: equal, exactly.
TEST_P(GgmlLoraSliceGraph, MulMatLoraAddsSlicesToTheirRowsAndGivesTheMergedOutputs) {
  const auto [dtype, how] = GetParam();
  TempDir dir;
  write_base(dir / "base.safetensors", dtype);
  const Model base = open_model(dir / "base.safetensors");
  const auto a = write_lora(dir.path().string(), kLoraA, 100);
  const auto b = write_lora(dir.path().string(), kLoraB, 200);
  const std::vector<LoraUse> uses = {{a, slice_match(*a, kLoraA, base), kLoraA.multiplier},
                                     {b, slice_match(*b, kLoraB, base), kLoraB.multiplier}};
  const ggml::LoraGraphWeights lora(lora_runtime_deltas(uses));
  ASSERT_EQ(lora.find(kQkv).size(), 4u);
  EXPECT_EQ(lora.find(kQkv)[3].row_begin, 20);
  EXPECT_EQ(lora.find(kQkv)[3].base_rows, static_cast<std::int64_t>(3 * kDim));

  LoadedModel merged = load(base, lora_requests(base, uses));
  LoraPatcher patcher(base, merged);
  for (const LoraUse& use : uses) patcher.apply(use);

  const auto x = lora_test::random_values(kDim * kTokens, 7, 1.0f);
  const double u = dtype == DType::F32 ? std::ldexp(1.0, -24) : std::ldexp(1.0, -11);
  const double x_rounding = dtype == DType::F32 ? 0.0 : std::ldexp(1.0, -11);
  const double per_s = u * (1 + x_rounding) + 2 * std::ldexp(1.0, -5) * x_rounding +
                       (2.0 * kDim + 8) * std::ldexp(1.0, -24);
  double largest_change = 0, largest_bound = 0;
  for (const BaseShape& shape : kBase) {
    const auto out = products(dtype, file_bytes(dir / "base.safetensors", *base.find(shape.name)),
                              bytes_of(merged, shape.name), shape.rows, shape.name, lora, x, how);
    const auto untouched = untouched_rows(shape.name, shape.rows, {&kLoraA, &kLoraB});
    for (std::int64_t t = 0; t < kTokens; ++t) {
      double s = 0;
      for (std::uint64_t c = 0; c < kDim; ++c) s += std::abs(double{x[t * kDim + c]});
      const double bound = per_s * s;
      largest_bound = std::max(largest_bound, bound);
      for (std::uint64_t r = 0; r < shape.rows; ++r) {
        const auto i = static_cast<std::size_t>(t * shape.rows + r);
        if (untouched[r]) {
          EXPECT_EQ(out.runtime[i], out.base[i]) << shape.name << " row " << r;
          EXPECT_EQ(out.merged[i], out.base[i]) << shape.name << " row " << r;
        } else {
          EXPECT_NEAR(out.runtime[i], out.merged[i], bound) << shape.name << " row " << r;
        }
        largest_change =
            std::max(largest_change, std::abs(double{out.runtime[i]} - double{out.base[i]}));
      }
    }
  }
  // A delta added to the wrong rows, or not at all, would be off by far more than the bound.
  EXPECT_GT(largest_change, 4 * largest_bound);
}

std::string runtime_case_name(const ::testing::TestParamInfo<RuntimeCase>& info) {
  return fmt::format("{}_{}", dtype_name(info.param.dtype),
                     info.param.how == ggml::detail::RowsAdd::acc ? "acc" : "pad");
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, GgmlLoraSliceGraph,
                         ::testing::Values(RuntimeCase{DType::F32, ggml::detail::RowsAdd::acc},
                                           RuntimeCase{DType::F32, ggml::detail::RowsAdd::pad},
                                           RuntimeCase{DType::F16, ggml::detail::RowsAdd::acc},
                                           RuntimeCase{DType::F16, ggml::detail::RowsAdd::pad}),
                         runtime_case_name);

TEST(GgmlLoraSliceGraph, ADeltaOutsideItsWeightsRowsIsAnErrorNamingTheTensor) {
  std::map<std::string, std::vector<LoraDelta>> deltas;
  deltas["qkv.weight"].push_back({.rows = 40,
                                  .cols = 8,
                                  .rank = 1,
                                  .down = std::vector<float>(8, 1.0f),
                                  .up = std::vector<float>(40, 1.0f),
                                  .scale = 1.0f,
                                  .row_begin = 100,
                                  .base_rows = 120});
  try {
    ggml::LoraGraphWeights lora(deltas);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              "the LoRA delta adds to rows [100, 140) of a weight with 120 rows (tensor "
              "qkv.weight)");
  }
}

}  // namespace
}  // namespace weightmap
