// An engine on ggml, built outside the checkout against weightmap::ggml and the engine's own
// ggml (tests/consumers/add_subdirectory with CONSUMER_GGML_SOURCE_DIR): writes a small
// safetensors model into the folder it is given, binds a no_alloc context's tensor to it on
// the CPU device, and reads the values back through ggml. Exits non-zero, saying why, when
// anything differs.
#include <ggml-backend.h>
#include <ggml.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <vector>
#include <weightmap/ggml.hpp>
#include <weightmap/weightmap.hpp>

namespace {

constexpr std::size_t kElements = 8;

std::string write_model(const std::string& folder) {
  const std::string path = folder + "/consumer-ggml.safetensors";
  weightmap::SafetensorsWriteOptions options;
  options.data_alignment = 64;  // mappable for the CPU device
  weightmap::write_safetensors(
      path, {{"w", weightmap::DType::F32, {kElements}}},
      [](std::size_t, std::uint64_t offset, std::span<std::byte> out) {
        for (std::size_t b = 0; b < out.size(); b += sizeof(float)) {
          const float v = static_cast<float>((offset + b) / sizeof(float)) + 0.5f;
          std::memcpy(out.data() + b, &v, sizeof v);
        }
      },
      options);
  return path;
}

int fail(const char* what) {
  std::fprintf(stderr, "bind_model: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: bind_model FOLDER");
  ggml_context* ctx = nullptr;
  try {
    const weightmap::Model model = weightmap::open_model(write_model(argv[1]));
    ggml_init_params params{};
    params.mem_size = ggml_tensor_overhead() * 4;
    params.no_alloc = true;
    ctx = ggml_init(params);
    ggml_tensor* w = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, kElements);
    ggml_set_name(w, "w");
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) return fail("ggml has no CPU device");

    const weightmap::ggml::Binding binding = weightmap::ggml::bind(
        model, weightmap::ggml::tensors_of({ctx}),
        [cpu](std::string_view, const ggml_tensor&) { return weightmap::ggml::TensorDevice{cpu}; });
    std::vector<float> back(kElements);
    ggml_backend_tensor_get(w, back.data(), 0, kElements * sizeof(float));
    for (std::size_t i = 0; i < kElements; ++i) {
      if (back[i] != static_cast<float>(i) + 0.5f) return fail("w holds other values");
    }
    std::printf("weightmap %s + ggml: %s; %s\n", std::string(weightmap::version_string()).c_str(),
                binding.report().summary_line().c_str(), binding.report().devices_line().c_str());
    ggml_free(ctx);
    return 0;
  } catch (const std::exception& e) {
    if (ctx != nullptr) ggml_free(ctx);
    return fail(e.what());
  }
}
