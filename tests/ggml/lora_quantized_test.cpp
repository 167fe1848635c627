// LoRAs on quantized base tensors through weightmap::ggml::lora_codec(): in place (mapped
// copy-on-write and loaded) and merged into a file. The reference is computed here with ggml
// directly, one patch at a time: dequantize, add the patch in f32 (lora_fixtures'
// reference_merge), quantize again. Undo must give back every byte of the file, including
// rows of a neighbour that a dropped page boundary cut in two.
#include <fmt/format.h>
#include <ggml.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "lora_fixtures.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/ggml_lora.hpp"

namespace weightmap {
namespace {

using lora_test::FloatTensor;
using lora_test::random_tensor;
using testing::TempDir;

std::vector<float> dequantize(DType dtype, std::span<const std::byte> bytes, std::uint64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  ggml_get_type_traits(static_cast<ggml_type>(dtype))
      ->to_float(bytes.data(), out.data(), static_cast<std::int64_t>(n));
  return out;
}

std::vector<std::byte> quantize(DType dtype, const std::vector<float>& values, std::uint64_t row) {
  std::vector<std::byte> out(static_cast<std::size_t>(*dtype_bytes_for(dtype, values.size())));
  ggml_quantize_chunk(static_cast<ggml_type>(dtype), values.data(), out.data(), 0,
                      static_cast<std::int64_t>(values.size() / row),
                      static_cast<std::int64_t>(row), nullptr);
  return out;
}

struct BaseTensor {
  std::string name;
  DType dtype;
  std::uint64_t rows, cols;
  std::vector<std::byte> bytes;  // as in the file
};

struct Patch {
  std::string base;
  FloatTensor down, up;
};

// Quantized base tensors back to back in a GGUF (data aligned to 32 bytes, so their rows are
// not page-aligned), and two LoRAs: A patches blk.0 and blk.2, B blk.1, blk.2 and blk.3.
struct Fixture {
  TempDir dir;
  std::vector<BaseTensor> tensors;
  Model base;
  std::shared_ptr<const LoraFile> a, b;
  std::vector<Patch> a_patches, b_patches;

  Fixture() {
    const std::vector<std::tuple<DType, std::uint64_t, std::uint64_t>> layout = {
        {DType::Q8_0, 40, 256},  // rows of 272 bytes: page edges cut them
        {DType::Q8_0, 24, 256},
        {DType::Q4_K, 16, 512},
        {DType::Q4_0, 20, 96}};
    std::vector<TensorToWrite> to_write;
    std::vector<std::vector<std::byte>> bytes;
    for (std::size_t i = 0; i < layout.size(); ++i) {
      const auto [dtype, rows, cols] = layout[i];
      const auto values = lora_test::random_values(rows * cols, static_cast<std::uint32_t>(i), 1);
      tensors.push_back(
          {fmt::format("blk.{}.w.weight", i), dtype, rows, cols, quantize(dtype, values, cols)});
      to_write.push_back({tensors.back().name, dtype, {rows, cols}});
      bytes.push_back(tensors.back().bytes);
    }
    lora_test::write_tensor_bytes(dir / "base.gguf", to_write, bytes, {}, true);
    base = open_model(dir / "base.gguf");
    a_patches = patches({0, 2}, 4, 100);
    b_patches = patches({1, 2, 3}, 3, 200);
    a = write_lora("a.safetensors", a_patches);
    b = write_lora("b.safetensors", b_patches);
  }

  std::vector<Patch> patches(const std::vector<std::size_t>& blocks, std::uint64_t rank,
                             std::uint32_t seed) const {
    std::vector<Patch> out;
    for (const std::size_t blk : blocks) {
      const BaseTensor& t = tensors[blk];
      out.push_back({t.name, random_tensor(t.name + ".lora_a", DType::F32, {rank, t.cols}, seed++),
                     random_tensor(t.name + ".lora_b", DType::F32, {t.rows, rank}, seed++, 0.5f)});
    }
    return out;
  }

  std::shared_ptr<const LoraFile> write_lora(const std::string& file,
                                             const std::vector<Patch>& list) const {
    std::vector<FloatTensor> parts;
    for (const Patch& patch : list) {
      parts.push_back(patch.down);
      parts.push_back(patch.up);
    }
    lora_test::write_tensors(dir / file, parts);
    return std::make_shared<const LoraFile>(read_lora(dir / file));
  }

  LoraUse use(const std::shared_ptr<const LoraFile>& lora, float multiplier) const {
    return {lora, match_lora(*lora, base, plain_lora_name_rules(), true), multiplier};
  }

  // blk's bytes after the patches of `applied` (list, multiplier), one at a time.
  std::vector<std::byte> expected(
      std::size_t blk, const std::vector<std::pair<const Patch*, float>>& applied) const {
    const BaseTensor& t = tensors[blk];
    std::vector<std::byte> bytes = t.bytes;
    for (const auto& [patch, multiplier] : applied) {
      if (patch->base != t.name) continue;
      const std::uint64_t rank = patch->down.shape[0];
      // No alpha in the files: alpha = rank, so the scale is the multiplier.
      const lora_test::ReferencePatch reference{patch->up.values, patch->down.values, rank,
                                                multiplier};
      auto values = lora_test::reference_merge(dequantize(t.dtype, bytes, t.rows * t.cols),
                                               DType::F32, t.rows, t.cols, {reference});
      bytes = quantize(t.dtype, values, t.cols);
    }
    return bytes;
  }

  std::vector<std::pair<const Patch*, float>> all(const std::vector<Patch>& list,
                                                  float multiplier) const {
    std::vector<std::pair<const Patch*, float>> out;
    for (const Patch& patch : list) out.emplace_back(&patch, multiplier);
    return out;
  }

  void expect_bytes(const LoadedModel& loaded,
                    const std::vector<std::pair<const Patch*, float>>& applied,
                    const std::string& when) const {
    for (std::size_t blk = 0; blk < tensors.size(); ++blk) {
      const auto& storage = *loaded.find(tensors[blk].name);
      const auto want = expected(blk, applied);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), storage.bytes.begin(), storage.bytes.end()))
          << when << ": " << storage.name;
    }
  }

  LoadedModel load_model(bool mmap) const {
    const std::vector<LoraUse> uses = {use(a, 1), use(b, 1)};
    auto requests = lora_requests(base, uses);
    for (auto& request : requests) request.device.alignment = 1;
    LoadOptions options;
    options.mode = mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    return load(base, requests, options);
  }
};

LoraApplyOptions with_codec() {
  LoraApplyOptions options;
  options.quantized = ggml::lora_codec();
  // Tiles of one row of blk.0 and blk.1 (256 elements, two f32 buffers): several tiles per
  // tensor, and blk.2's 512-element rows still go whole.
  options.tile_bytes = 2 * 256 * sizeof(float);
  return options;
}

void apply_two_and_undo_one(bool mmap) {
  Fixture f;
  LoadedModel loaded = f.load_model(mmap);
  for (const auto& storage : loaded.tensors) EXPECT_EQ(storage.mapped, mmap) << storage.name;
  LoraPatcher patcher(f.base, loaded, with_codec());
  const LoraId a = patcher.apply(f.use(f.a, 0.75f));
  patcher.apply(f.use(f.b, -1.5f));
  auto both = f.all(f.a_patches, 0.75f);
  for (const auto& patch : f.all(f.b_patches, -1.5f)) both.push_back(patch);
  f.expect_bytes(loaded, both, "base + A + B");
  patcher.undo(a);
  f.expect_bytes(loaded, f.all(f.b_patches, -1.5f), "base + B");
  patcher.undo_all();
  f.expect_bytes(loaded, {}, "base");
}

TEST(GgmlLoraQuantized, MappedTensorsMatchTheGgmlRoundTripAndUndoRestoresTheFile) {
  apply_two_and_undo_one(true);
}

TEST(GgmlLoraQuantized, LoadedTensorsMatchTheGgmlRoundTripAndUndoRestoresTheFile) {
  apply_two_and_undo_one(false);
}

TEST(GgmlLoraQuantized, ANeighbourRowCutByADroppedPageIsRestoredWholeAndPatchedAgain) {
  Fixture f;
  // The page holding blk.0's end also holds blk.1's first bytes, and its edge cuts a row.
  const TensorInfo& blk0 = *f.base.find("blk.0.w.weight");
  const TensorInfo& blk1 = *f.base.find("blk.1.w.weight");
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t edge = (blk0.offset + blk0.nbytes + page - 1) / page * page;
  const std::uint64_t row_bytes = *dtype_bytes_for(DType::Q8_0, 256);
  ASSERT_GT(edge, blk1.offset);
  ASSERT_LT(edge, blk1.offset + blk1.nbytes);
  ASSERT_NE((edge - blk1.offset) % row_bytes, 0u);

  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded, with_codec());
  const LoraId a = patcher.apply(f.use(f.a, 1.0f));
  patcher.apply(f.use(f.b, 8.0f));  // large, so a half-restored row would show
  patcher.undo(a);                  // drops blk.0's pages, and with them blk.1's first rows
  f.expect_bytes(loaded, f.all(f.b_patches, 8.0f), "base + B");
}

// The reference itself, against the arithmetic in double: q8_0 rounds each value to a step of
// its block's largest magnitude / 127, so after one patch it is within that step of the
// dequantized base plus the exact delta.
TEST(GgmlLoraQuantized, TheReferenceIsWithinAQuantizationStepOfTheExactPatch) {
  Fixture f;
  const BaseTensor& t = f.tensors[0];
  const Patch& patch = f.a_patches[0];
  const auto before = dequantize(t.dtype, t.bytes, t.rows * t.cols);
  const auto after_bytes = f.expected(0, {{&patch, 0.75f}});
  const auto after = dequantize(t.dtype, after_bytes, t.rows * t.cols);
  const std::uint64_t rank = patch.down.shape[0];
  std::vector<double> exact(before.size());
  for (std::uint64_t o = 0; o < t.rows; ++o) {
    for (std::uint64_t c = 0; c < t.cols; ++c) {
      double sum = 0;
      for (std::uint64_t r = 0; r < rank; ++r) {
        sum += double{patch.up.values[o * rank + r]} * patch.down.values[r * t.cols + c];
      }
      exact[o * t.cols + c] = before[o * t.cols + c] + 0.75 * sum;
    }
  }
  for (std::size_t block = 0; block < exact.size(); block += 32) {
    double largest = 0;
    for (std::size_t i = block; i < block + 32; ++i)
      largest = std::max(largest, std::abs(exact[i]));
    for (std::size_t i = block; i < block + 32; ++i) {
      EXPECT_NEAR(after[i], exact[i], largest / 127) << i;
    }
  }
}

TEST(GgmlLoraQuantized, MergingIntoAQuantizedBaseGivesThePatchedBytes) {
  Fixture f;
  const std::vector<LoraUse> uses = {f.use(f.a, 0.5f), f.use(f.b, 2.0f)};
  LoraMergeOptions options;
  options.format = FileFormat::gguf;
  options.chunk_bytes = 100;  // chunk edges cut rows
  options.quantized = ggml::lora_codec();
  write_merged_model(f.base, uses, f.dir / "merged.gguf", options);

  auto applied = f.all(f.a_patches, 0.5f);
  for (const auto& patch : f.all(f.b_patches, 2.0f)) applied.push_back(patch);
  const Model merged = open_model(f.dir / "merged.gguf");
  std::ifstream in(f.dir / "merged.gguf", std::ios::binary);
  for (std::size_t blk = 0; blk < f.tensors.size(); ++blk) {
    const TensorInfo& info = *merged.find(f.tensors[blk].name);
    EXPECT_EQ(info.dtype, f.tensors[blk].dtype);
    std::vector<std::byte> bytes(static_cast<std::size_t>(info.nbytes));
    in.seekg(static_cast<std::streamoff>(info.offset));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    EXPECT_EQ(bytes, f.expected(blk, applied)) << info.name;
  }
}

TEST(GgmlLoraQuantized, WithoutACodecQuantizedBasesAreRefused) {
  Fixture f;
  const std::string want =
      f.dir / "base.gguf" + ": quantized base tensor blk.0.w.weight needs the ggml adapter";
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  try {
    patcher.apply(f.use(f.a, 1.0f));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_EQ(std::string(e.what()), want);
  }
  f.expect_bytes(loaded, {}, "base");
  const LoraUse use = f.use(f.a, 1.0f);
  try {
    write_merged_model(f.base, std::span(&use, 1), f.dir / "merged.gguf",
                       {.format = FileFormat::gguf});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), want);
  }
}

TEST(GgmlLoraQuantized, TypesThatNeedAnImportanceMatrixAreRefused) {
  TempDir dir;
  lora_test::write_tensors(dir / "base.gguf", {{"w.weight", DType::IQ2_XXS, {4, 256}, {}}}, {},
                           true);
  lora_test::write_tensors(dir / "lora.safetensors",
                           {random_tensor("w.weight.lora_a", DType::F32, {2, 256}, 1),
                            random_tensor("w.weight.lora_b", DType::F32, {4, 2}, 2)});
  const Model base = open_model(dir / "base.gguf");
  auto lora = std::make_shared<const LoraFile>(read_lora(dir / "lora.safetensors"));
  const LoraUse use{lora, match_lora(*lora, base, plain_lora_name_rules(), true), 1};
  LoadedModel loaded = load(base, lora_requests(base, std::span(&use, 1)));
  LoraPatcher patcher(base, loaded, with_codec());
  try {
    patcher.apply(use);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_EQ(std::string(e.what()),
              dir / "base.gguf" +
                  ": ggml cannot requantize iq2_xxs after a LoRA: quantizing it needs an "
                  "importance matrix (tensor w.weight)");
  }
}

}  // namespace
}  // namespace weightmap
