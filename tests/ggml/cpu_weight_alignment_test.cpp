// Which alignment ggml's CPU kernels need of weights. bind() wraps a file mapping in one
// host-pointer buffer (its base rounded down to a page, as ggml_backend_cpu_buffer_from_ptr
// asserts 32 bytes of the base) and points each tensor at its offset in the file, which in
// files from Hugging Face's safetensors writer is a multiple of 8, rarely of 32. Here the ops
// an engine runs on weights read them from inside one such buffer at 0, 2, 4, 8, 16, 24 and 32
// bytes past a 64-byte boundary, and every output must equal, bit for bit, the output with the
// weights 64-byte aligned. Each weight is tried at the offsets that are multiples of its type's
// natural alignment (DTypeInfo::alignment; smaller offsets would split its elements or
// blocks): f32 at 0, 4, 8, 16, 24, 32; f16, bf16, q8_0, q4_0 and q6_K at every offset (their
// elements and blocks need 2); q4_K at 0, 4, 8, 16, 24, 32 (its ggml_half2 needs 4).
// Every op passes at natural alignment: none needs more (if one did, it would be named here
// and its weights kept on a stricter alignment). Graphs run with 1 and 2 threads, since ggml
// splits rows between threads and the kernels differ for a batch of 1 and larger batches.
#include <fmt/format.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ggml/model_fixture.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/ggml.hpp"

namespace weightmap::ggml {
namespace {

constexpr std::size_t kSlot = 64;  // weights start on 64-byte boundaries
constexpr std::array<std::size_t, 7> kOffsets = {0, 2, 4, 8, 16, 24, 32};  // added to them
constexpr std::array<int, 2> kThreads = {1, 2};

struct Weight {
  ggml_type type;
  std::vector<std::int64_t> ne;  // innermost first
};

// Builds the graph's output from the placed weights; inputs it makes are filled by `fill`.
using BuildGraph = std::function<ggml_tensor*(ggml_context*, std::span<ggml_tensor* const>)>;

struct OpCase {
  std::string name;
  std::vector<Weight> weights;
  BuildGraph build;
};

std::size_t natural_alignment(ggml_type type) { return dtype_info(dtype_of(type)).alignment; }

std::int64_t elements(const std::vector<std::int64_t>& ne) {
  std::int64_t n = 1;
  for (const auto d : ne) n *= d;
  return n;
}

// A weight's bytes: deterministic values in [-1, 1), quantized by ggml where the type asks.
std::vector<std::byte> weight_bytes(const Weight& w, std::uint32_t seed) {
  const std::int64_t n = elements(w.ne);
  const std::vector<float> values = test::ramp(static_cast<std::size_t>(n), seed);
  const std::int64_t row = w.ne[0];
  std::vector<std::byte> out(ggml_row_size(w.type, row) * static_cast<std::size_t>(n / row));
  ggml_quantize_chunk(w.type, values.data(), out.data(), 0, n / row, row, nullptr);
  return out;
}

// An input activation: a tensor of the compute context, filled with deterministic values.
ggml_tensor* input(ggml_context* ctx, std::vector<std::int64_t> ne, std::uint32_t seed) {
  ne.resize(4, 1);
  ggml_tensor* t = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3]);
  const auto values = test::ramp(static_cast<std::size_t>(ggml_nelements(t)), seed);
  std::memcpy(t->data, values.data(), ggml_nbytes(t));
  return t;
}

// An aligned allocation wrapped like a mapping: one CPU host-pointer buffer over all of it.
class HostPointerBuffer {
 public:
  // aligned_alloc wants a size that is a multiple of the alignment.
  explicit HostPointerBuffer(std::size_t size)
      : memory_(static_cast<std::byte*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096)),
                std::free) {
    std::memset(memory_.get(), 0, size);
    buffer_ = ggml_backend_cpu_buffer_from_ptr(memory_.get(), size);
  }
  ~HostPointerBuffer() { ggml_backend_buffer_free(buffer_); }
  HostPointerBuffer(const HostPointerBuffer&) = delete;
  HostPointerBuffer& operator=(const HostPointerBuffer&) = delete;

  std::byte* base() const { return memory_.get(); }
  ggml_backend_buffer_t get() const { return buffer_; }

 private:
  std::unique_ptr<std::byte, decltype(&std::free)> memory_;
  ggml_backend_buffer_t buffer_ = nullptr;
};

// Runs the case with weight i at a 64-byte boundary plus offset (rounded down to the weight's
// natural alignment); returns the output's bytes.
std::vector<std::byte> run(const OpCase& op, std::size_t offset, int threads) {
  std::vector<std::vector<std::byte>> bytes;
  std::size_t size = 0;
  for (std::size_t i = 0; i < op.weights.size(); ++i) {
    bytes.push_back(weight_bytes(op.weights[i], static_cast<std::uint32_t>(i + 1)));
    size += (bytes.back().size() + 2 * kSlot - 1) / kSlot * kSlot;
  }
  HostPointerBuffer buffer(size + kSlot);

  test::Context weights(op.weights.size());
  std::vector<ggml_tensor*> placed;
  std::size_t slot = 0;
  for (std::size_t i = 0; i < op.weights.size(); ++i) {
    const Weight& w = op.weights[i];
    auto ne = w.ne;
    ne.resize(GGML_MAX_DIMS, 1);
    ggml_tensor* t =
        ggml_new_tensor(weights.get(), w.type, static_cast<int>(w.ne.size()), ne.data());
    const std::size_t at = slot + offset / natural_alignment(w.type) * natural_alignment(w.type);
    EXPECT_EQ(ggml_backend_tensor_alloc(buffer.get(), t, buffer.base() + at), GGML_STATUS_SUCCESS);
    std::memcpy(t->data, bytes[i].data(), bytes[i].size());
    placed.push_back(t);
    slot += (bytes[i].size() + 2 * kSlot - 1) / kSlot * kSlot;
  }

  ggml_init_params params{std::size_t{32} << 20, nullptr, false};
  ggml_context* ctx = ggml_init(params);
  ggml_tensor* out = op.build(ctx, placed);
  ggml_cgraph* graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(graph, out);
  ggml_backend_t cpu = ggml_backend_cpu_init();
  ggml_backend_cpu_set_n_threads(cpu, threads);
  EXPECT_EQ(ggml_backend_graph_compute(cpu, graph), GGML_STATUS_SUCCESS);
  ggml_backend_free(cpu);
  std::vector<std::byte> result(ggml_nbytes(out));
  std::memcpy(result.data(), out->data, result.size());
  ggml_free(ctx);
  return result;
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> cases;
  // mul_mat: 512-wide rows (two k-quant super-blocks, 16 q8_0/q4_0 blocks), 48 rows; a batch
  // of 1 takes the vector-dot path, 17 columns the batched one.
  for (const auto type : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                          GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K}) {
    for (const std::int64_t batch : {1, 17}) {
      cases.push_back({fmt::format("MulMat_{}_Batch{}", ggml_type_name(type), batch),
                       {{type, {512, 48}}},
                       [batch](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                         return ggml_mul_mat(ctx, w[0], input(ctx, {512, batch}, 11));
                       }});
    }
  }
  // conv_2d (im2col, then mul_mat) with a 3x3 kernel of 4 -> 8 channels and a bias, as a UNet's
  // convolutions; f16 and f32 kernels take different im2col types.
  for (const auto type : {GGML_TYPE_F16, GGML_TYPE_F32}) {
    cases.push_back({fmt::format("Conv2dIm2col_{}", ggml_type_name(type)),
                     {{type, {3, 3, 4, 8}}, {GGML_TYPE_F32, {1, 1, 8, 1}}},
                     [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                       ggml_tensor* x = input(ctx, {9, 7, 4, 2}, 12);
                       return ggml_add(ctx, ggml_conv_2d(ctx, w[0], x, 1, 1, 1, 1, 1, 1), w[1]);
                     }});
  }
  // get_rows: embeddings looked up by token id.
  for (const auto type : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0}) {
    cases.push_back({fmt::format("GetRows_{}", ggml_type_name(type)),
                     {{type, {64, 40}}},
                     [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                       ggml_tensor* ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 6);
                       const std::array<std::int32_t, 6> rows = {3, 0, 39, 17, 3, 22};
                       std::memcpy(ids->data, rows.data(), sizeof(rows));
                       return ggml_get_rows(ctx, w[0], ids);
                     }});
  }
  // add and mul with a bias or scale broadcast over rows.
  cases.push_back({"AddMulBroadcast_f32",
                   {{GGML_TYPE_F32, {72}}, {GGML_TYPE_F32, {72}}},
                   [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                     ggml_tensor* x = input(ctx, {72, 9}, 13);
                     return ggml_add(ctx, ggml_mul(ctx, x, w[0]), w[1]);
                   }});
  // norms, then the norm's weight and bias.
  cases.push_back({"NormWeightBias_f32",
                   {{GGML_TYPE_F32, {72}}, {GGML_TYPE_F32, {72}}},
                   [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                     ggml_tensor* x = input(ctx, {72, 9}, 14);
                     return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, 1e-5f), w[0]), w[1]);
                   }});
  cases.push_back({"RmsNormWeight_f32",
                   {{GGML_TYPE_F32, {72}}},
                   [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                     ggml_tensor* x = input(ctx, {72, 9}, 15);
                     return ggml_mul(ctx, ggml_rms_norm(ctx, x, 1e-5f), w[0]);
                   }});
  cases.push_back({"GroupNormWeightBias_f32",
                   {{GGML_TYPE_F32, {1, 1, 16, 1}}, {GGML_TYPE_F32, {1, 1, 16, 1}}},
                   [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                     ggml_tensor* x = input(ctx, {6, 5, 16, 2}, 16);
                     return ggml_add(ctx, ggml_mul(ctx, ggml_group_norm(ctx, x, 4, 1e-6f), w[0]),
                                     w[1]);
                   }});
  // A weight read as a whole: copied into f32 (converted or dequantized), and made contiguous
  // from a transposed view.
  for (const auto type : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0}) {
    cases.push_back({fmt::format("CpyToF32_{}", ggml_type_name(type)),
                     {{type, {64, 24}}},
                     [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                       return ggml_cpy(ctx, w[0], ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 24));
                     }});
  }
  for (const auto type : {GGML_TYPE_F32, GGML_TYPE_F16}) {
    cases.push_back({fmt::format("ContTransposed_{}", ggml_type_name(type)),
                     {{type, {40, 24}}},
                     [](ggml_context* ctx, std::span<ggml_tensor* const> w) {
                       return ggml_cont(ctx, ggml_transpose(ctx, w[0]));
                     }});
  }
  return cases;
}

class CpuWeightAlignment : public ::testing::TestWithParam<OpCase> {};

TEST_P(CpuWeightAlignment, OutputsAtNaturalAlignmentEqualThoseAt32And64Bytes) {
  const OpCase& op = GetParam();
  for (const int threads : kThreads) {
    const auto aligned64 = run(op, 0, threads);
    ASSERT_FALSE(aligned64.empty());
    for (const std::size_t offset : kOffsets) {
      EXPECT_EQ(run(op, offset, threads), aligned64)
          << op.name << " with weights " << offset << " bytes past a 64-byte boundary, " << threads
          << " threads";
    }
  }
}

// The outputs depend on the weights (a test that compared zeros would prove nothing).
TEST(CpuWeightAlignmentCases, OutputsAreNotAllZero) {
  for (const OpCase& op : op_cases()) {
    const auto out = run(op, 0, 1);
    EXPECT_TRUE(std::any_of(out.begin(), out.end(), [](std::byte b) { return b != std::byte{0}; }))
        << op.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CpuWeightAlignment, ::testing::ValuesIn(op_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& param) {
                           return param.param.name;
                         });

}  // namespace
}  // namespace weightmap::ggml
