// bind() on the CPU device: mapped, loaded, converted by the core, quantized by ggml, the
// all-mapped context, optional and missing tensors, and the report.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ggml/model_fixture.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/ggml.hpp"
#include "weightmap/model.hpp"

namespace weightmap::ggml {
namespace {

using test::Context;
using test::FloatTensor;
using test::ramp;

TensorDevice on_cpu(std::string_view, const ggml_tensor&) { return {test::cpu_device()}; }

// Two f32 tensors whose sizes keep every offset 32-byte aligned, and a 1-D bias.
std::vector<FloatTensor> aligned_f32_model() {
  return {{"layer.weight", DType::F32, {16, 8}, ramp(128, 1)},
          {"layer.bias", DType::F32, {16}, ramp(16, 2)},
          {"out.weight", DType::F32, {4, 16}, ramp(64, 3)}};
}

struct Fixture {
  weightmap::testing::TempDir dir;
  std::string path = dir / "model.safetensors";
  Context context;
  EngineTensors tensors;

  explicit Fixture(const std::vector<FloatTensor>& model, std::uint32_t data_alignment = 32) {
    test::write_model(path, model, data_alignment);
  }
  ggml_tensor* add(const std::string& name, ggml_type type, std::vector<std::uint64_t> shape) {
    ggml_tensor* t = context.add(name, type, shape);
    tensors.by_name[name] = t;
    if (tensors.contexts.empty()) tensors.contexts.push_back(context.get());
    return t;
  }
  Binding bind(const BindOptions& options = {}) {
    return ggml::bind(open_model(path), tensors, on_cpu, options);
  }
};

std::vector<float> floats_of(const ggml_tensor* t) {
  std::vector<float> out(static_cast<std::size_t>(ggml_nelements(t)));
  ggml_backend_tensor_get(t, out.data(), 0, ggml_nbytes(t));
  return out;
}

TEST(GgmlBindCpu, MapsTensorsIntoTheFileAndAllocatesNothing) {
  const auto model = aligned_f32_model();
  Fixture f(model);
  std::vector<ggml_tensor*> ts;
  for (const auto& t : model) ts.push_back(f.add(t.name, GGML_TYPE_F32, t.shape));

  const Binding binding = f.bind();
  const BindReport& report = binding.report();
  EXPECT_EQ(report.load.mapped_tensors, 3u);
  EXPECT_EQ(report.load.mapped_files, 1u);
  EXPECT_EQ(report.load.loaded_tensors, 0u);
  EXPECT_EQ(report.host_pointer_buffers, 1u);
  // Every tensor of the context was mapped: ggml's allocator returned NULL and bind took it
  // for "nothing to allocate", not for a failure.
  EXPECT_EQ(report.allocated_buffers, 0u);
  ASSERT_EQ(binding.buffers().size(), 1u);
  EXPECT_STREQ(ggml_backend_buffer_name(binding.buffers()[0]), "CPU_Mapped");
  for (std::size_t i = 0; i < model.size(); ++i) {
    EXPECT_EQ(ts[i]->buffer, binding.buffers()[0]) << model[i].name;
    EXPECT_EQ(floats_of(ts[i]), model[i].values) << model[i].name;
  }
}

TEST(GgmlBindCpu, WithoutMmapLoadsStraightIntoOneCpuBuffer) {
  const auto model = aligned_f32_model();
  Fixture f(model);
  std::vector<ggml_tensor*> ts;
  for (const auto& t : model) ts.push_back(f.add(t.name, GGML_TYPE_F32, t.shape));

  BindOptions options;
  options.load.mode = weightmap::LoadMode::read;
  const Binding binding = f.bind(options);
  const LoadReport& report = binding.report().load;
  EXPECT_EQ(report.mapped_tensors, 0u);
  EXPECT_EQ(report.loaded_tensors, 3u);
  EXPECT_EQ(report.reasons.at(Reason::mapping_disabled), 3u);
  EXPECT_EQ(binding.report().allocated_buffers, 1u);
  EXPECT_EQ(binding.report().host_pointer_buffers, 0u);
  for (std::size_t i = 0; i < model.size(); ++i) {
    EXPECT_TRUE(ggml_backend_buffer_is_host(ts[i]->buffer));
    EXPECT_EQ(floats_of(ts[i]), model[i].values) << model[i].name;
  }
}

TEST(GgmlBindCpu, CoreConvertsF16FileTensorIntoF32Tensor) {
  std::vector<FloatTensor> model = aligned_f32_model();
  model[0].dtype = DType::F16;  // ramp values are exact in f16
  Fixture f(model);
  ggml_tensor* w = f.add(model[0].name, GGML_TYPE_F32, model[0].shape);
  for (std::size_t i = 1; i < model.size(); ++i)
    f.add(model[i].name, GGML_TYPE_F32, model[i].shape);

  const Binding binding = f.bind();
  const LoadReport& report = binding.report().load;
  EXPECT_EQ(report.loaded_tensors, 1u);
  EXPECT_EQ(report.converted_tensors, 1u);
  EXPECT_EQ(report.reasons.at(Reason::dtype_differs), 1u);
  EXPECT_EQ(binding.report().quantized_tensors, 0u);
  EXPECT_EQ(floats_of(w), model[0].values);
}

TEST(GgmlBindCpu, GgmlQuantizesF16FileTensorIntoQ8_0Tensor) {
  std::vector<FloatTensor> model = {{"proj.weight", DType::F16, {8, 64}, ramp(512, 7)}};
  for (const bool use_mmap : {true, false}) {
    Fixture f(model);
    ggml_tensor* w = f.add("proj.weight", GGML_TYPE_Q8_0, {8, 64});
    BindOptions options;
    options.load.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    const Binding binding = f.bind(options);
    EXPECT_EQ(binding.report().quantized_tensors, 1u);
    EXPECT_EQ(binding.report().load.converted_tensors, 1u);
    EXPECT_EQ(binding.report().load.loaded_tensors, 1u);
    EXPECT_EQ(binding.report().load.mapped_tensors, 0u);
    EXPECT_EQ(binding.report().load.reasons.at(Reason::dtype_differs), 1u);

    // The same bytes ggml's own quantizer makes from the values.
    std::vector<std::byte> expected(ggml_row_size(GGML_TYPE_Q8_0, 64) * 8);
    ggml_quantize_chunk(GGML_TYPE_Q8_0, model[0].values.data(), expected.data(), 0, 8, 64, nullptr);
    EXPECT_EQ(test::tensor_bytes(w), expected) << "use_mmap " << use_mmap;
  }
}

TEST(GgmlBindCpu, TensorOffItsNaturalAlignmentIsLoadedWithItsReason) {
  // 3 f16 values put the f32 tensor after them 6 bytes past a 32-byte boundary: off the 4
  // bytes f32 needs on the CPU.
  std::vector<FloatTensor> model = {{"a", DType::F16, {3}, ramp(3, 1)},
                                    {"b", DType::F32, {8}, ramp(8, 2)}};
  Fixture f(model);
  f.add("a", GGML_TYPE_F16, {3});
  ggml_tensor* b = f.add("b", GGML_TYPE_F32, {8});
  const Binding binding = f.bind();
  EXPECT_EQ(binding.report().load.mapped_tensors, 1u);
  EXPECT_EQ(binding.report().load.reasons.at(Reason::misaligned_for_device), 1u);
  EXPECT_EQ(binding.report().allocated_buffers, 1u);
  EXPECT_EQ(floats_of(b), model[1].values);
}

TEST(GgmlBindCpu, TensorsOff32BytesAtTheirNaturalAlignmentAreMapped) {
  // 3 f32 values put the later tensors 12 bytes past a 32-byte boundary: enough for f32 and
  // f16 on the CPU (tests/ggml/cpu_weight_alignment_test.cpp proves the kernels need no more).
  std::vector<FloatTensor> model = {{"a", DType::F32, {3}, ramp(3, 1)},
                                    {"b", DType::F32, {8}, ramp(8, 2)},
                                    {"c", DType::F16, {8}, ramp(8, 3)}};
  Fixture f(model);
  f.add("a", GGML_TYPE_F32, {3});
  ggml_tensor* b = f.add("b", GGML_TYPE_F32, {8});
  f.add("c", GGML_TYPE_F16, {8});
  const Binding binding = f.bind();
  EXPECT_EQ(binding.report().load.mapped_tensors, 3u);
  EXPECT_EQ(binding.report().allocated_buffers, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->data) % 32, 12u);
  EXPECT_EQ(floats_of(b), model[1].values);
}

TEST(GgmlBindCpu, FileShapeMayDifferByOuterOnesAndStillMaps) {
  std::vector<FloatTensor> model = {{"conv.bias", DType::F32, {1, 8, 1, 1}, ramp(8, 5)}};
  Fixture f(model);
  ggml_tensor* bias = f.add("conv.bias", GGML_TYPE_F32, {8});
  const Binding binding = f.bind();
  EXPECT_EQ(binding.report().load.mapped_tensors, 1u);
  EXPECT_EQ(floats_of(bias), model[0].values);
}

TEST(GgmlBindCpu, MissingTensorIsAnErrorNamingIt) {
  Fixture f(aligned_f32_model());
  for (const auto& t : aligned_f32_model()) f.add(t.name, GGML_TYPE_F32, t.shape);
  f.add("extra.weight", GGML_TYPE_F32, {4});
  try {
    f.bind();
    FAIL() << "bind did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_EQ(std::string(e.what()),
              f.path +
                  ": the model has no tensor of this name (mark the request optional if it may "
                  "be absent) (tensor extra.weight)");
  }
  // The engine's tensors are left as they came.
  for (const auto& [name, t] : f.tensors.by_name) {
    EXPECT_EQ(t->data, nullptr) << name;
    EXPECT_EQ(t->buffer, nullptr) << name;
  }
}

TEST(GgmlBindCpu, OptionalMissingTensorIsAllocatedAndZeroed) {
  Fixture f(aligned_f32_model());
  for (const auto& t : aligned_f32_model()) f.add(t.name, GGML_TYPE_F32, t.shape);
  ggml_tensor* extra = f.add("extra.weight", GGML_TYPE_F32, {4});
  BindOptions options;
  options.optional = [](std::string_view name) { return name.starts_with("extra."); };
  const Binding binding = f.bind(options);
  EXPECT_EQ(binding.report().load.missing_optional, std::vector<std::string>{"extra.weight"});
  EXPECT_EQ(floats_of(extra), std::vector<float>(4, 0.0f));
}

TEST(GgmlBindCpu, ElementCountMismatchNamesBothShapes) {
  Fixture f({{"w", DType::F16, {4, 8}, ramp(32, 1)}});
  f.add("w", GGML_TYPE_Q8_0, {2, 32});  // 64 elements, the file has 32
  try {
    f.bind();
    FAIL() << "bind did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(e.message(),
              "the ggml tensor's shape [2, 32] does not have the 32 elements of the tensor's "
              "shape [4, 8] in the file");
    EXPECT_EQ(e.tensor(), "w");
  }
}

TEST(GgmlBindCpu, TypeNeitherCoreNorGgmlConvertsIsUnsupported) {
  Fixture f({{"w", DType::F16, {256}, ramp(256, 1)}});
  f.add("w", GGML_TYPE_IQ2_XXS, {256});  // needs an importance matrix
  try {
    f.bind();
    FAIL() << "bind did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_EQ(e.message(), "cannot convert f16 to iq2_xxs");
    EXPECT_EQ(e.tensor(), "w");
  }
}

TEST(GgmlBindCpu, RejectsTensorsThatHaveDataOrNoName) {
  Fixture f(aligned_f32_model());
  for (const auto& t : aligned_f32_model()) f.add(t.name, GGML_TYPE_F32, t.shape);
  ggml_tensor* stray = f.context.add("stray", GGML_TYPE_F32, std::vector<std::uint64_t>{4});
  try {
    f.bind();
    FAIL() << "bind did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "a tensor of the contexts has no name in the tensor map (bind allocates every "
              "tensor of the contexts it is given) (tensor stray)");
  }
  f.tensors.by_name["stray"] = stray;
  float value = 0;
  stray->data = &value;
  try {
    f.bind();
    FAIL() << "bind did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(),
              "the ggml tensor has data already (create weights in a no_alloc context)");
    EXPECT_EQ(e.tensor(), "stray");
  }
  EXPECT_EQ(stray->data, &value);  // left alone
  stray->data = nullptr;
}

TEST(GgmlBindCpu, LogsTheCoreLineAndTheDevicesLine) {
  std::vector<FloatTensor> model = aligned_f32_model();
  model[2].dtype = DType::F16;
  Fixture f(model);
  for (const auto& t : model) f.add(t.name, GGML_TYPE_F32, t.shape);
  std::vector<std::string> info;
  BindOptions options;
  options.load.log = [&](LogLevel level, std::string_view line) {
    if (level == LogLevel::info) info.emplace_back(line);
  };
  const Binding binding = f.bind(options);
  ASSERT_EQ(info.size(), 2u);
  EXPECT_EQ(info[0], binding.report().summary_line());
  EXPECT_TRUE(info[0].starts_with(
      "memory-mapped 2 tensors in 1 files (0.0 MiB), loaded 1 tensors (0.0 MiB, 1 converted) in "))
      << info[0];
  EXPECT_EQ(info[1], "on CPU: 2 mapped (0.0 MiB), 1 loaded (0.0 MiB)");
  ASSERT_EQ(binding.report().devices.size(), 1u);
  EXPECT_EQ(binding.report().devices[0].mapped_bytes, (128u + 16u) * 4u);
}

}  // namespace
}  // namespace weightmap::ggml
