// load() with default requests on a checkpoint laid out as Hugging Face's safetensors writer
// lays it out (tensors on 8-byte boundaries, rarely on 32): every tensor is mapped, since a
// default DeviceCaps asks for each tensor's natural alignment, not for 32 bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/hugging_face_checkpoint.hpp"
#include "support/safetensors_bytes.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

TEST(HuggingFaceLayout, DefaultRequestsMapEveryTensor) {
  testing::TempDir dir;
  const std::string path = dir / "sd-hf.safetensors";
  testing::write_hugging_face_checkpoint(path, std::uint64_t{2} << 20, 120);
  const Model model = open_model(path);
  std::vector<TensorRequest> requests;
  std::size_t off32 = 0;
  for (const auto& t : model.tensors()) {
    requests.push_back({.name = t.name});
    off32 += t.offset % 32 != 0 ? 1 : 0;
  }
  EXPECT_GT(off32, model.tensors().size() / 2);

  const LoadedModel loaded = load(model, requests);
  EXPECT_EQ(loaded.report.mapped_tensors, model.tensors().size());
  EXPECT_EQ(loaded.report.loaded_tensors, 0u);
  for (const auto& storage : loaded.tensors) {
    EXPECT_TRUE(storage.mapped) << storage.name;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(storage.bytes.data()) %
                  dtype_info(storage.dtype).alignment,
              0u)
        << storage.name;
  }

  // A device that asks for 32 bytes still gets them: those tensors are copied.
  for (auto& r : requests) r.device.alignment = 32;
  const LoadedModel strict = load(model, requests);
  EXPECT_EQ(strict.report.reasons.at(Reason::misaligned_for_device), off32);
}

}  // namespace
}  // namespace weightmap
