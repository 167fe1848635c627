// What an engine does first with weightmap, built outside the checkout against each way of
// consuming it (tests/consumers/*, scripts/test-consumers.sh): writes a small safetensors
// model into the folder it is given, opens it, loads one tensor mapped and one converted to
// f16, and checks the values it got. Exits non-zero, saying why, when anything differs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <vector>
#include <weightmap/weightmap.hpp>

namespace {

constexpr std::size_t kElements = 6;

float value_at(std::size_t tensor, std::size_t i) { return static_cast<float>(tensor * 10 + i); }

std::string write_model(const std::string& folder) {
  const std::string path = folder + "/consumer.safetensors";
  const std::vector<weightmap::TensorToWrite> tensors = {
      {"w", weightmap::DType::F32, {2, 3}},
      {"h", weightmap::DType::F32, {kElements}},
  };
  // The data area aligned for the device (DeviceCaps::alignment, 32 by default), so "w", the
  // first tensor, can be mapped.
  weightmap::SafetensorsWriteOptions options;
  options.data_alignment = 64;
  weightmap::write_safetensors(
      path, tensors,
      [](std::size_t tensor, std::uint64_t offset, std::span<std::byte> out) {
        for (std::size_t b = 0; b < out.size(); b += sizeof(float)) {
          const float v = value_at(tensor, (offset + b) / sizeof(float));
          std::memcpy(out.data() + b, &v, sizeof v);
        }
      },
      options);
  return path;
}

int fail(const char* what) {
  std::fprintf(stderr, "load_model: %s\n", what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: load_model FOLDER");
  try {
    const weightmap::Model model = weightmap::open_model(write_model(argv[1]));
    std::vector<weightmap::TensorRequest> requests(2);
    requests[0].name = "w";
    requests[1].name = "h";
    requests[1].dtype = weightmap::DType::F16;
    const weightmap::LoadedModel loaded = weightmap::load(model, requests);

    const weightmap::TensorStorage* w = loaded.find("w");
    const weightmap::TensorStorage* h = loaded.find("h");
    if (w == nullptr || h == nullptr) return fail("a requested tensor is missing");
    if (!w->mapped) return fail("w (f32 as in the file) was not mapped");
    if (h->mapped || h->bytes.size() != kElements * 2) return fail("h was not converted to f16");
    float sum = 0;
    for (std::size_t i = 0; i < kElements; ++i) {
      float v = 0;
      std::memcpy(&v, w->bytes.data() + i * sizeof v, sizeof v);
      if (v != value_at(0, i)) return fail("w holds other values than were written");
      sum += v;
    }
    std::vector<float> back(kElements);
    weightmap::convert(weightmap::DType::F16, h->bytes, weightmap::DType::F32,
                       std::as_writable_bytes(std::span(back)), kElements);
    for (std::size_t i = 0; i < kElements; ++i) {
      if (back[i] != value_at(1, i)) return fail("h holds other values than were written");
    }
    const weightmap::Version v = weightmap::version();
    if (v.major != WEIGHTMAP_VERSION_MAJOR || v.minor != WEIGHTMAP_VERSION_MINOR) {
      return fail("the library's version is not the header's");
    }
    std::printf("weightmap %s: %s; sum of w = %g\n",
                std::string(weightmap::version_string()).c_str(),
                loaded.report.summary_line().c_str(), static_cast<double>(sum));
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
