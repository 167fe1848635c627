// More than one device: some tensors on the CPU, others on ggml's RPC backend connected to a
// server on 127.0.0.1. The RPC device cannot read host memory, so its tensors are loaded and
// uploaded; graph outputs stay bit-identical to an all-CPU run.
#include <gtest/gtest.h>

#include <cstring>

#include "ggml/model_fixture.hpp"
#include "ggml/rpc_server_process.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "tiny_transformer/tiny_transformer.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/model.hpp"

namespace weightmap::ggml {
namespace {

using test::Context;
using test::FloatTensor;
using test::ramp;

std::vector<float> floats_of(const ggml_tensor* t) {
  std::vector<float> out(static_cast<std::size_t>(ggml_nelements(t)));
  ggml_backend_tensor_get(t, out.data(), 0, ggml_nbytes(t));
  return out;
}

TEST(GgmlBindRpc, RpcTensorsAreLoadedAndUploadedCpuTensorsMapped) {
  test::RpcServerProcess server;
  ggml_backend_dev_t rpc = server.device();
  ASSERT_NE(rpc, nullptr);

  weightmap::testing::TempDir dir;
  const std::string path = dir / "model.safetensors";
  const std::vector<FloatTensor> model = {{"cpu.weight", DType::F32, {16, 8}, ramp(128, 1)},
                                          {"rpc.weight", DType::F32, {16, 8}, ramp(128, 2)},
                                          {"rpc.proj", DType::F16, {8, 64}, ramp(512, 3)}};
  test::write_model(path, model);

  for (const bool use_mmap : {true, false}) {
    // One context per device, as ggml engines keep them.
    Context cpu_context;
    Context rpc_context;
    EngineTensors tensors;
    tensors.contexts = {cpu_context.get(), rpc_context.get()};
    ggml_tensor* c = tensors.by_name["cpu.weight"] =
        cpu_context.add("cpu.weight", GGML_TYPE_F32, model[0].shape);
    ggml_tensor* r = tensors.by_name["rpc.weight"] =
        rpc_context.add("rpc.weight", GGML_TYPE_F32, model[1].shape);
    ggml_tensor* q = tensors.by_name["rpc.proj"] =
        rpc_context.add("rpc.proj", GGML_TYPE_Q8_0, model[2].shape);

    BindOptions options;
    options.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    const Binding binding = bind(
        open_model(path), tensors,
        [&](std::string_view name, const ggml_tensor&) {
          return TensorDevice{name.starts_with("rpc.") ? rpc : test::cpu_device()};
        },
        options);

    const BindReport& report = binding.report();
    ASSERT_EQ(report.devices.size(), 2u);
    const DeviceCounts& on_cpu = report.devices[0];
    const DeviceCounts& on_rpc = report.devices[1];
    EXPECT_EQ(on_cpu.device, "CPU");
    EXPECT_EQ(on_rpc.device, ggml_backend_dev_name(rpc));
    EXPECT_EQ(on_cpu.mapped_tensors, use_mmap ? 1u : 0u);
    EXPECT_EQ(on_rpc.mapped_tensors, 0u);
    EXPECT_EQ(on_rpc.loaded_tensors, 2u);
    EXPECT_EQ(on_rpc.uploaded_tensors, 2u);
    EXPECT_EQ(report.quantized_tensors, 1u);
    if (use_mmap) {
      EXPECT_EQ(report.load.reasons.at(Reason::device_cannot_read_host_memory), 1u);
    }
    EXPECT_FALSE(ggml_backend_buffer_is_host(r->buffer));

    EXPECT_EQ(floats_of(c), model[0].values);
    EXPECT_EQ(floats_of(r), model[1].values);
    std::vector<std::byte> expected(ggml_nbytes(q));
    ggml_quantize_chunk(GGML_TYPE_Q8_0, model[2].values.data(), expected.data(), 0, 8, 64, nullptr);
    EXPECT_EQ(test::tensor_bytes(q), expected);
  }
}

TEST(GgmlBindRpc, TinyTransformerSplitOverCpuAndRpcGivesBitIdenticalOutputs) {
  test::RpcServerProcess server;
  ggml_backend_dev_t rpc = server.device();
  ggml_backend_dev_t cpu = test::cpu_device();

  weightmap::testing::TempDir dir;
  const std::string path = dir / "tiny.safetensors";
  const examples::TinyTransformerConfig config;
  examples::write_tiny_transformer(path, config);
  const auto input = examples::tiny_transformer_input(config);

  const auto all_cpu = [&] {
    examples::TinyTransformer engine(path, config, [&](std::string_view) { return cpu; });
    return engine.forward(input);
  }();

  for (const bool use_mmap : {true, false}) {
    BindOptions options;
    options.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    // The second layer and the (quantized) output projection live on the RPC server.
    examples::TinyTransformer engine(
        path, config,
        [&](std::string_view name) {
          return name.starts_with("blk.1.") || name == "output.weight" ? rpc : cpu;
        },
        options);
    const BindReport& report = engine.report();
    ASSERT_EQ(report.devices.size(), 2u);
    EXPECT_EQ(report.devices[1].device, ggml_backend_dev_name(rpc));
    EXPECT_EQ(report.devices[1].mapped_tensors, 0u);
    EXPECT_EQ(report.devices[1].uploaded_tensors, 11u);  // 10 of blk.1, and output.weight
    EXPECT_EQ(report.devices[0].mapped_tensors, use_mmap ? 11u : 0u);

    const auto split = engine.forward(input);
    ASSERT_EQ(split.size(), all_cpu.size());
    EXPECT_EQ(std::memcmp(split.data(), all_cpu.data(), split.size() * sizeof(float)), 0)
        << "use_mmap " << use_mmap;
  }
}

}  // namespace
}  // namespace weightmap::ggml
