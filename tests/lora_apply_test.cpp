// Applying LoRAs in place and undoing them: mapped copy-on-write tensors (pages dropped,
// neighbours re-patched), loaded and converted tensors (read again), several LoRAs with
// multipliers, and the errors. Every result is compared bit for bit with the reference merge
// of lora_fixtures.hpp, computed in a plain loop.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "lora_fixtures.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

using lora_test::FloatTensor;
using lora_test::reference_merge;
using lora_test::ReferencePatch;
using lora_test::write_tensors;
using testing::TempDir;

FloatTensor stored_tensor(std::string name, DType dtype, std::vector<std::uint64_t> shape,
                          std::uint32_t seed, float scale) {
  FloatTensor tensor =
      lora_test::random_tensor(std::move(name), dtype, std::move(shape), seed, scale);
  for (auto& value : tensor.values) value = lora_test::round_to(dtype, value);
  return tensor;
}

struct Module {
  std::string base;  // "blk.1.w.weight"
  FloatTensor up, down;
  std::optional<float> alpha;
};

// Base tensors whose byte sizes are no multiple of the page size, so neighbours share pages.
struct Fixture {
  TempDir dir;
  std::vector<FloatTensor> base_tensors;
  Model base;
  std::shared_ptr<const LoraFile> a, b;
  std::vector<Module> a_modules, b_modules;

  explicit Fixture(bool misaligned = false, DType dtype = DType::F16) {
    if (misaligned) base_tensors.push_back({"aaa.odd", DType::U8, {3}, {1, 2, 3}});
    const std::vector<std::vector<std::uint64_t>> shapes = {{48, 40}, {40, 52}, {36, 60}, {64, 33}};
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      base_tensors.push_back(stored_tensor(fmt::format("blk.{}.w.weight", i), dtype, shapes[i],
                                           static_cast<std::uint32_t>(10 + i), 1.0f));
    }
    write_tensors(dir / "base.safetensors", base_tensors);
    base = open_model(dir / "base.safetensors");
    a_modules = modules({0, 2}, 4, 2.0f, 100);
    b_modules = modules({1, 2, 3}, 3, std::nullopt, 200);
    a = write_lora("a.safetensors", a_modules);
    b = write_lora("b.safetensors", b_modules);
  }

  const FloatTensor& tensor(std::size_t blk) const {
    return base_tensors[base_tensors.size() - 4 + blk];
  }

  std::vector<Module> modules(std::vector<std::size_t> blocks, std::uint64_t rank,
                              std::optional<float> alpha, std::uint32_t seed) const {
    std::vector<Module> out;
    for (const std::size_t blk : blocks) {
      const FloatTensor& target = tensor(blk);
      const std::string name = fmt::format("lora_unet_blk_{}_w", blk);
      out.push_back({target.name,
                     stored_tensor(name + ".lora_up.weight", DType::F16, {target.shape[0], rank},
                                   seed++, 0.5f),
                     stored_tensor(name + ".lora_down.weight", DType::F16, {rank, target.shape[1]},
                                   seed++, 0.5f),
                     alpha});
    }
    return out;
  }

  std::shared_ptr<const LoraFile> write_lora(const std::string& file,
                                             const std::vector<Module>& list) const {
    std::vector<FloatTensor> tensors;
    for (const auto& module : list) {
      tensors.push_back(module.down);
      tensors.push_back(module.up);
      if (module.alpha) {
        const std::string prefix =
            module.up.name.substr(0, module.up.name.size() - std::string(".lora_up.weight").size());
        tensors.push_back({prefix + ".alpha", DType::F32, {}, {*module.alpha}});
      }
    }
    write_tensors(dir / file, tensors);
    return std::make_shared<const LoraFile>(read_lora(dir / file));
  }

  LoraUse use(const std::shared_ptr<const LoraFile>& lora, float multiplier) const {
    return {lora, match_lora(*lora, base, sd_lora_name_rules(), true), multiplier};
  }

  LoadedModel load_model(bool mmap, std::optional<DType> as = std::nullopt) const {
    const std::vector<LoraUse> uses = {use(a, 1), use(b, 1)};
    auto requests = lora_requests(base, uses);
    for (auto& request : requests) {
      request.device.alignment = 1;
      if (as && request.name.starts_with("blk.")) request.dtype = as;
    }
    LoadOptions options;
    options.mode = mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    return load(base, requests, options);
  }

  // Expected values of every blk tensor after `applied` (module list, multiplier) in order.
  std::vector<std::vector<float>> expected(
      const std::vector<std::pair<const std::vector<Module>*, float>>& applied, DType as) const {
    std::vector<std::vector<float>> out;
    for (std::size_t blk = 0; blk < 4; ++blk) {
      const FloatTensor& target = tensor(blk);
      std::vector<ReferencePatch> patches;
      for (const auto& [list, multiplier] : applied) {
        for (const Module& module : *list) {
          if (module.base != target.name) continue;
          const std::uint64_t rank = module.down.shape[0];
          const double alpha = module.alpha.value_or(static_cast<float>(rank));
          patches.push_back({module.up.values, module.down.values, rank,
                             static_cast<float>(multiplier * alpha / static_cast<double>(rank))});
        }
      }
      out.push_back(reference_merge(target.values, as, target.shape[0], target.shape[1], patches));
    }
    return out;
  }

  void expect_values(const LoadedModel& loaded, const std::vector<std::vector<float>>& want,
                     const std::string& when) const {
    for (std::size_t blk = 0; blk < 4; ++blk) {
      const TensorStorage& storage = *loaded.find(tensor(blk).name);
      EXPECT_EQ(lora_test::as_floats(storage.dtype, storage.bytes), want[blk])
          << when << ": " << storage.name;
    }
  }

  std::vector<std::byte> file_bytes(const TensorInfo& info) const {
    std::ifstream in(dir / "base.safetensors", std::ios::binary);
    in.seekg(static_cast<std::streamoff>(info.offset));
    std::vector<std::byte> out(static_cast<std::size_t>(info.nbytes));
    in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
    return out;
  }

  void expect_file_bytes(const LoadedModel& loaded) const {
    for (const TensorInfo& info : base.tensors()) {
      const TensorStorage& storage = *loaded.find(info.name);
      const auto bytes = file_bytes(info);
      EXPECT_TRUE(
          std::equal(bytes.begin(), bytes.end(), storage.bytes.begin(), storage.bytes.end()))
          << info.name << " differs from the file";
    }
  }
};

TEST(LoraApply, MappedTensorsGetTheReferenceMergeAndTheFileStaysAsItWas) {
  Fixture f;
  LoadedModel loaded = f.load_model(true);
  for (const auto& storage : loaded.tensors) EXPECT_TRUE(storage.mapped) << storage.name;
  EXPECT_EQ(loaded.tensors.front().mapping->access(), Access::copy_on_write);
  LoraPatcher patcher(f.base, loaded);
  patcher.apply(f.use(f.a, 1.0f));
  f.expect_values(loaded, f.expected({{&f.a_modules, 1.0f}}, DType::F16), "base + A");
  // Copy-on-write: the file on disk never sees a patch.
  for (std::size_t blk = 0; blk < 4; ++blk) {
    const TensorInfo& info = *f.base.find(f.tensor(blk).name);
    EXPECT_EQ(lora_test::as_floats(DType::F16, f.file_bytes(info)), f.tensor(blk).values);
  }
}

TEST(LoraApply, ABaseFileTruncatedWhileMappedIsAnErrorNamingTheTensorNotSigbus) {
  Fixture f;
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  // Cut the file inside the first patched tensor: its pages past the cut now fault, and so
  // do those of every tensor after it.
  const TensorInfo& first = *f.base.find(f.tensor(0).name);
  const std::uint64_t cut = first.offset + first.nbytes / 2;
  std::filesystem::resize_file(f.dir / "base.safetensors", cut);
  const LoraUse use = f.use(f.a, 1.0f);
  try {
    patcher.apply(use);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), ErrorCode::io);
    // Two workers patch tensors side by side: the error names whichever faulted first, one of
    // the targets that reach past the cut.
    bool names_a_cut_target = false;
    for (const LoraTarget& target : use.match.targets) {
      const TensorInfo& info = *f.base.find(target.base_tensor);
      if (info.offset + info.nbytes > cut &&
          what.find("(tensor " + target.base_tensor + ",") != std::string::npos) {
        names_a_cut_target = true;
      }
    }
    EXPECT_TRUE(names_a_cut_target) << what;
    EXPECT_NE(what.find("base.safetensors"), std::string::npos) << what;
    EXPECT_NE(what.find("after it was mapped"), std::string::npos) << what;  // the fault guard
  }
}

// Undo drops copy-on-write pages: on a base file cut short meanwhile, the engine's next read of
// them would die of SIGBUS. Undo checks the file first and leaves the patched pages in place.
TEST(LoraApply, UndoOnATruncatedBaseFileIsAnErrorNamingItAndKeepsThePatch) {
  Fixture f;
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  const LoraId id = patcher.apply(f.use(f.a, 1.0f));
  const auto patched = f.expected({{&f.a_modules, 1.0f}}, DType::F16);
  const std::string path = f.dir / "base.safetensors";
  const std::uint64_t size = std::filesystem::file_size(path);
  // Cut after blk.0's last page. Linux removes every page of the mapping past the new end at
  // the truncation, private copies included, so only pages before the cut can be kept.
  const TensorInfo& first = *f.base.find(f.tensor(0).name);
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t cut = (first.offset + first.nbytes + page - 1) / page * page;
  ASSERT_LT(cut, size);
  std::filesystem::resize_file(path, cut);
  try {
    patcher.undo(id);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_EQ(std::string(e.what()),
              fmt::format("{}: the file changed since the model was opened (its size went from "
                          "{} to {} bytes); undo would read it again, so the LoRA stays applied",
                          path, size, cut));
  }
  EXPECT_EQ(patcher.applied(), std::vector<LoraId>{id});
  // The patched tensor before the cut still reads and still holds base + LoRA: its private
  // pages were not dropped to the (changed) file.
  const TensorStorage& storage = *loaded.find(f.tensor(0).name);
  EXPECT_EQ(lora_test::as_floats(storage.dtype, storage.bytes), patched[0]);
}

TEST(LoraApply, UndoingEverythingRestoresEveryByteOfTheFile) {
  Fixture f;
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  patcher.apply(f.use(f.a, 0.75f));
  patcher.apply(f.use(f.b, -1.25f));
  EXPECT_EQ(patcher.applied().size(), 2u);
  patcher.undo_all();
  EXPECT_TRUE(patcher.applied().empty());
  f.expect_file_bytes(loaded);
}

void switch_from_a_to_b(bool misaligned, bool mmap, float b_multiplier = 1.0f) {
  Fixture f(misaligned);
  LoadedModel loaded = f.load_model(mmap);
  for (const auto& storage : loaded.tensors) EXPECT_EQ(storage.mapped, mmap) << storage.name;
  LoraPatcher patcher(f.base, loaded);
  const LoraId a = patcher.apply(f.use(f.a, 1.0f));
  patcher.apply(f.use(f.b, b_multiplier));
  f.expect_values(loaded,
                  f.expected({{&f.a_modules, 1.0f}, {&f.b_modules, b_multiplier}}, DType::F16),
                  "base + A + B");
  patcher.undo(a);
  // blk.1 and blk.3 only carry B, but share pages with blk.0 and blk.2, which lost A.
  f.expect_values(loaded, f.expected({{&f.b_modules, b_multiplier}}, DType::F16), "base + B");
  patcher.undo_all();
  f.expect_file_bytes(loaded);
}

TEST(LoraApply, SwitchingFromAToBLeavesBasePlusB) { switch_from_a_to_b(false, true); }

TEST(LoraApply, SwitchingWorksWhenElementsStraddlePageEdges) {
  // A 3-byte tensor first puts every f16 tensor at an odd offset: page edges cut elements.
  // B's large multiplier changes the high byte of those elements, so a half-restored
  // element would show.
  switch_from_a_to_b(true, true, 64.0f);
}

TEST(LoraApply, LoadedTensorsAreReadAgainOnUndo) { switch_from_a_to_b(false, false); }

TEST(LoraApply, SeveralLorasWithMultipliersAndUndoingOneOfTwo) {
  Fixture f;
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  patcher.apply(f.use(f.a, 0.5f));
  const LoraId b = patcher.apply(f.use(f.b, -1.5f));
  f.expect_values(loaded, f.expected({{&f.a_modules, 0.5f}, {&f.b_modules, -1.5f}}, DType::F16),
                  "A x 0.5 + B x -1.5");
  patcher.undo(b);
  f.expect_values(loaded, f.expected({{&f.a_modules, 0.5f}}, DType::F16), "A x 0.5");
  patcher.apply(f.use(f.b, 2.0f));
  f.expect_values(loaded, f.expected({{&f.a_modules, 0.5f}, {&f.b_modules, 2.0f}}, DType::F16),
                  "A x 0.5 + B x 2");
}

TEST(LoraApply, ConvertedTensorsArePatchedInTheirLoadedType) {
  Fixture f;
  LoadedModel loaded = f.load_model(true, DType::F32);
  EXPECT_EQ(loaded.find("blk.0.w.weight")->dtype, DType::F32);
  EXPECT_FALSE(loaded.find("blk.0.w.weight")->mapped);
  LoraPatcher patcher(f.base, loaded);
  const LoraId a = patcher.apply(f.use(f.a, 1.0f));
  patcher.apply(f.use(f.b, 1.0f));
  patcher.undo(a);
  f.expect_values(loaded, f.expected({{&f.b_modules, 1.0f}}, DType::F32), "base + B in f32");
  patcher.undo_all();
  f.expect_values(loaded, f.expected({}, DType::F32), "base in f32");
}

TEST(LoraApply, UndoOfAnUnknownIdChangesNothing) {
  Fixture f;
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  patcher.apply(f.use(f.a, 1.0f));
  try {
    patcher.undo(LoraId{42});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "LoRA application 42 is not applied");
  }
  f.expect_values(loaded, f.expected({{&f.a_modules, 1.0f}}, DType::F16), "base + A");
}

TEST(LoraApply, ReadOnlyMappedTensorsAreNotWritable) {
  Fixture f;
  std::vector<TensorRequest> requests;
  for (const auto& info : f.base.tensors()) {
    requests.push_back({.name = info.name, .device = {.alignment = 1}});
  }
  LoadedModel loaded = load(f.base, requests);
  LoraPatcher patcher(f.base, loaded);
  try {
    patcher.apply(f.use(f.a, 1.0f));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              f.dir / "base.safetensors" +
                  ": the tensor is not writable: request it with writes_in_place (see "
                  "mark_lora_targets) so it is mapped copy-on-write or loaded (tensor "
                  "blk.0.w.weight)");
  }
  f.expect_values(loaded, f.expected({}, DType::F16), "base");
}

TEST(LoraApply, QuantizedBaseTensorNeedsTheGgmlAdapter) {
  TempDir dir;
  write_tensors(dir / "base.gguf", {{"blk.0.w.weight", DType::Q8_0, {4, 32}, {}}}, {}, true);
  write_tensors(dir / "lora.safetensors",
                {lora_test::random_tensor("blk.0.w.weight.lora_a", DType::F32, {2, 32}, 1),
                 lora_test::random_tensor("blk.0.w.weight.lora_b", DType::F32, {4, 2}, 2)});
  const Model base = open_model(dir / "base.gguf");
  auto lora = std::make_shared<const LoraFile>(read_lora(dir / "lora.safetensors"));
  const std::vector<LoraUse> uses = {{lora, match_lora(*lora, base, plain_lora_name_rules()), 1}};
  ASSERT_EQ(uses[0].match.targets.size(), 1u);
  LoadedModel loaded = load(base, lora_requests(base, uses));
  LoraPatcher patcher(base, loaded);
  try {
    patcher.apply(uses[0]);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_EQ(std::string(e.what()),
              dir / "base.gguf" + ": quantized base tensor blk.0.w.weight needs the ggml adapter");
  }
}

TEST(LoraApply, LoConWithMidAndDiffsMatchAMergeInDouble) {
  TempDir dir;
  const FloatTensor conv = stored_tensor("conv.weight", DType::F32, {8, 4, 3, 3}, 1, 1.0f);
  const FloatTensor bias = stored_tensor("conv.bias", DType::F32, {8}, 2, 1.0f);
  write_tensors(dir / "base.safetensors", {bias, conv});
  const FloatTensor down =
      stored_tensor("lora_unet_conv.lora_down.weight", DType::F16, {2, 4, 1, 1}, 3, 0.5f);
  const FloatTensor mid =
      stored_tensor("lora_unet_conv.lora_mid.weight", DType::F16, {2, 2, 3, 3}, 4, 0.5f);
  const FloatTensor up =
      stored_tensor("lora_unet_conv.lora_up.weight", DType::F16, {8, 2, 1, 1}, 5, 0.5f);
  const FloatTensor diff = stored_tensor("lora_unet_conv.diff_b", DType::F16, {8}, 6, 0.5f);
  write_tensors(dir / "lora.safetensors",
                {down, mid, up, diff, {"lora_unet_conv.alpha", DType::F32, {}, {1.0f}}});
  const Model base = open_model(dir / "base.safetensors");
  auto lora = std::make_shared<const LoraFile>(read_lora(dir / "lora.safetensors"));
  const LoraUse use{lora, match_lora(*lora, base, sd_lora_name_rules(), true), 0.8f};
  ASSERT_EQ(use.match.targets.size(), 2u);
  auto requests = lora_requests(base, std::span(&use, 1));
  for (auto& request : requests) request.device.alignment = 1;
  LoadedModel loaded = load(base, requests);
  LoraPatcher patcher(base, loaded);
  patcher.apply(use);

  // W[o, i, h, w] += 0.8 * (1 / 2) * sum_a sum_b up[o, a] mid[a, b, h, w] down[b, i]
  const auto patched = lora_test::as_floats(DType::F32, loaded.find("conv.weight")->bytes);
  for (std::size_t o = 0; o < 8; ++o) {
    for (std::size_t i = 0; i < 4; ++i) {
      for (std::size_t k = 0; k < 9; ++k) {
        double sum = 0;
        for (std::size_t a = 0; a < 2; ++a) {
          for (std::size_t b = 0; b < 2; ++b) {
            sum += double{up.values[o * 2 + a]} * mid.values[(a * 2 + b) * 9 + k] *
                   down.values[b * 4 + i];
          }
        }
        const std::size_t e = (o * 4 + i) * 9 + k;
        const double want = conv.values[e] + 0.8 * 0.5 * sum;
        EXPECT_NEAR(patched[e], want, 1e-6 * (1 + std::abs(want))) << e;
      }
    }
  }
  const auto bias_patched = lora_test::as_floats(DType::F32, loaded.find("conv.bias")->bytes);
  for (std::size_t o = 0; o < 8; ++o) {
    EXPECT_EQ(bias_patched[o], bias.values[o] + 0.8f * diff.values[o]) << o;
  }
  patcher.undo_all();
  EXPECT_EQ(lora_test::as_floats(DType::F32, loaded.find("conv.weight")->bytes), conv.values);
  EXPECT_EQ(lora_test::as_floats(DType::F32, loaded.find("conv.bias")->bytes), bias.values);
}

}  // namespace
}  // namespace weightmap
