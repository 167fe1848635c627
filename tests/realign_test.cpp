// weightmap::realign: realigned files read back through our readers (and gguf-py, and a
// check of the safetensors rules in python) with the same tensors, bytes and metadata, every
// tensor the layout promises on the alignment and mapped by the planner; errors in words.
#include "weightmap/realign.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "format/realign_layout.hpp"
#include "io/file_reader.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/shell_command.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model.hpp"
#include "weightmap/writer.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using testing::TempDir;

// --- the layout alone ---

std::vector<std::optional<std::size_t>> slot_tensors(const SafetensorsLayout& layout) {
  std::vector<std::optional<std::size_t>> tensors;
  for (const auto& slot : layout.slots) tensors.push_back(slot.tensor);
  return tensors;
}

std::vector<std::uint64_t> slot_offsets(const SafetensorsLayout& layout) {
  std::vector<std::uint64_t> offsets;
  for (const auto& slot : layout.slots) offsets.push_back(slot.offset);
  return offsets;
}

TEST(RealignLayout, WholeMultiplesKeepTheirOrderAndTheRestFollowByTheirSizesPowerOfTwo) {
  const std::vector<std::uint64_t> sizes = {64, 12, 128, 5, 14, 24, 0, 128};
  const SafetensorsLayout layout = plan_safetensors_layout(sizes, 64, false);
  EXPECT_THAT(slot_tensors(layout), ElementsAre(0, 2, 6, 7, 5, 1, 4, 3));
  EXPECT_THAT(slot_offsets(layout), ElementsAre(0, 64, 192, 192, 320, 344, 356, 370));
  EXPECT_THAT(layout.unaligned, ElementsAre(1, 4, 3));
  EXPECT_EQ(layout.padding_bytes, 0u);
}

TEST(RealignLayout, PaddingTensorsFillOnlyTheGapsOrderingLeaves) {
  const std::vector<std::uint64_t> sizes = {64, 12, 128, 5, 14, 24, 0, 128};
  const SafetensorsLayout layout = plan_safetensors_layout(sizes, 64, true);
  EXPECT_THAT(slot_tensors(layout),
              ElementsAre(0, 2, 6, 7, 5, std::nullopt, 1, std::nullopt, 4, std::nullopt, 3));
  EXPECT_THAT(slot_offsets(layout),
              ElementsAre(0, 64, 192, 192, 320, 344, 384, 396, 448, 462, 512));
  EXPECT_TRUE(layout.unaligned.empty());
  EXPECT_EQ(layout.padding_bytes, 40u + 52u + 50u);
}

TEST(RealignLayout, OneOddSizedTensorMovesToTheEndAndNeedsNoPadding) {
  const std::vector<std::uint64_t> sizes = {64, 6, 128};
  const SafetensorsLayout layout = plan_safetensors_layout(sizes, 64, true);
  EXPECT_THAT(slot_tensors(layout), ElementsAre(0, 2, 1));
  EXPECT_THAT(slot_offsets(layout), ElementsAre(0, 64, 192));
  EXPECT_EQ(layout.padding_bytes, 0u);
}

TEST(RealignLayout, SizesThatAddUpToTheAlignmentRealignWhatFollows) {
  // 32 + 32: the third odd-sized tensor starts on 64 again.
  const std::vector<std::uint64_t> sizes = {32, 32, 8};
  const SafetensorsLayout layout = plan_safetensors_layout(sizes, 64, false);
  EXPECT_THAT(slot_offsets(layout), ElementsAre(0, 32, 64));
  EXPECT_THAT(layout.unaligned, ElementsAre(1));
}

// --- fixtures ---

// Byte b of tensor t: a pattern that tells tensors and positions apart.
std::byte pattern(std::size_t tensor, std::uint64_t offset) {
  return static_cast<std::byte>((tensor * 37 + offset * 7 + 1) % 251);
}

void fill_pattern(std::size_t tensor, std::uint64_t offset, std::span<std::byte> out) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern(tensor, offset + i);
}

// A safetensors file as the python writer makes them (header padded to 8), with tensors
// whose sizes are not multiples of 64, so offsets land on 8-byte (and worse) boundaries.
testing::SafetensorsBuilder odd_sizes_builder() {
  testing::SafetensorsBuilder builder;
  builder
      .add("embed", "F16", {4, 8})  // 64 B
      .add("odd.a", "F32", {3})     // 12 B
      .add("big", "F32", {32})      // 128 B
      .add("odd.b", "U8", {5})      // 5 B
      .add("odd.c", "BF16", {7})    // 14 B
      .add("odd.d", "I64", {3})     // 24 B
      .add("zero", "F32", {0})      // 0 B
      .add("w", "F16", {64});       // 128 B
  builder.metadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}, {"a", "1"}};
  return builder;
}

void write_safetensors_fixture(const std::string& path, const testing::SafetensorsBuilder& b) {
  testing::Bytes data;
  for (std::size_t i = 0; i < b.tensors.size(); ++i) {
    for (std::uint64_t j = 0; j < testing::spec_bytes(b.tensors[i]); ++j) {
      data.push_back(pattern(i, j));
    }
  }
  const std::string header = b.header();
  testing::write_file(path, testing::safetensors_file(header.size(), header, data));
}

std::vector<std::byte> tensor_bytes(const std::string& path, const TensorInfo& tensor) {
  const io::FileReader reader(path);
  std::vector<std::byte> bytes(static_cast<std::size_t>(tensor.nbytes));
  reader.read_at(tensor.offset, bytes);
  return bytes;
}

bool same_value(const MetadataValue& a, const MetadataValue& b) {
  if (a.type != b.type || a.element_type != b.element_type) return false;
  const auto* items_a = std::get_if<MetadataArray>(&a.value);
  const auto* items_b = std::get_if<MetadataArray>(&b.value);
  if (items_a != nullptr && items_b != nullptr) {
    return std::equal(items_a->begin(), items_a->end(), items_b->begin(), items_b->end(),
                      same_value);
  }
  if (a.value.index() != b.value.index() || items_a != nullptr || items_b != nullptr) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, MetadataArray>) {
          return false;
        } else {
          return x == std::get<T>(b.value);
        }
      },
      a.value);
}

// Every tensor of `in` is in `out` with the same dtype, shape and bytes.
void expect_same_tensors(const std::string& in, const std::string& out) {
  const Model source = open_model(in);
  const Model realigned = open_model(out);
  for (const TensorInfo& tensor : source.tensors()) {
    const TensorInfo* found = realigned.find(tensor.name);
    ASSERT_NE(found, nullptr) << tensor.name;
    EXPECT_EQ(found->dtype, tensor.dtype) << tensor.name;
    EXPECT_EQ(found->shape, tensor.shape) << tensor.name;
    EXPECT_EQ(tensor_bytes(out, *found), tensor_bytes(in, tensor)) << tensor.name;
  }
}

// Plans every tensor of `names` for a device needing `alignment`: all must be mapped.
void expect_planner_maps(const std::string& path, std::size_t alignment,
                         const std::vector<std::string>& names) {
  const Model model = open_model(path);
  std::vector<TensorRequest> requests;
  for (const std::string& name : names) {
    TensorRequest request;
    request.name = name;
    request.device.alignment = alignment;
    requests.push_back(request);
  }
  const Plan plan = weightmap::plan(model, requests);
  for (const PlannedTensor& planned : plan.tensors) {
    EXPECT_EQ(planned.placement, Placement::mapped) << requests[planned.request].name;
  }
}

std::vector<std::string> tensor_names(const std::string& path) {
  std::vector<std::string> names;
  const Model model = open_model(path);
  for (const TensorInfo& tensor : model.tensors()) names.push_back(tensor.name);
  return names;
}

std::vector<std::string> names_of(const RealignResult& result) {
  std::vector<std::string> names;
  for (const auto& entry : result.unaligned) names.push_back(entry.first);
  return names;
}

void expect_python_accepts_safetensors(const std::string& in, const std::string& out,
                                       std::uint32_t alignment,
                                       const std::vector<std::string>& unaligned) {
  std::vector<std::string> args = {in, out, std::to_string(alignment)};
  args.insert(args.end(), unaligned.begin(), unaligned.end());
  if (const auto failure = test::run_python_script("safetensors_check_realigned.py", args)) {
    ADD_FAILURE() << *failure;
  }
}

// --- safetensors ---

TEST(RealignSafetensors, OrderingAlignsWholeMultiplesAndReportsTheOddSizedRest) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  const std::string out = dir / "out.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());

  const RealignResult result = realign(in, out);
  EXPECT_EQ(result.format, FileFormat::safetensors);
  EXPECT_EQ(result.tensors, 8u);
  EXPECT_TRUE(result.reordered);
  EXPECT_EQ(result.padding_tensors, 0u);
  EXPECT_THAT(names_of(result), ElementsAre("odd.a", "odd.c", "odd.b"));
  EXPECT_EQ(result.size, fs::file_size(out));

  expect_same_tensors(in, out);
  const Model model = open_model(out);
  EXPECT_EQ(model.files()[0].data_offset % 64, 0u);
  EXPECT_EQ(model.tensors().size(), 8u);
  for (const TensorInfo& tensor : model.tensors()) {
    // The ordering promise: at least on the element size.
    EXPECT_EQ(tensor.offset % dtype_info(tensor.dtype).block_bytes, 0u) << tensor.name;
  }
  expect_planner_maps(out, 64, {"embed", "big", "zero", "w", "odd.d"});
  expect_python_accepts_safetensors(in, out, 64, {"odd.a", "odd.c", "odd.b"});
}

TEST(RealignSafetensors, PaddingTensorsPutEveryTensorOnTheAlignmentAndThePlannerMapsAll) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());
  const std::vector<std::string> names = tensor_names(in);
  // At 256 every tensor is smaller than the alignment: each but the last needs a gap after
  // it (and the empty tensor goes first).
  for (const auto& [alignment, paddings] : {std::pair{64u, 3u}, std::pair{256u, 6u}}) {
    SCOPED_TRACE(alignment);
    const std::string out = dir / fmt::format("out{}.safetensors", alignment);
    const RealignResult result =
        realign(in, out, {.alignment = alignment, .padding_tensors = true});
    EXPECT_TRUE(result.unaligned.empty());
    EXPECT_EQ(result.padding_tensors, paddings);
    EXPECT_EQ(result.tensors, 8u);

    expect_same_tensors(in, out);
    const Model model = open_model(out);
    EXPECT_EQ(model.tensors().size(), 8u + paddings);  // padding tensors are tensors to readers
    for (const std::string& name : names) {
      EXPECT_EQ(model.find(name)->offset % alignment, 0u) << name;
    }
    expect_planner_maps(out, alignment, names);
    expect_python_accepts_safetensors(in, out, alignment, {});
  }
}

TEST(RealignSafetensors, OneOddSizedTensorGoesLastAndEveryTensorIsAligned) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  const std::string out = dir / "out.safetensors";
  testing::SafetensorsBuilder builder;
  builder.add("a", "F32", {16}).add("scale", "F32", {1}).add("b", "F16", {64});
  write_safetensors_fixture(in, builder);

  const RealignResult result = realign(in, out, {.alignment = 64});
  EXPECT_TRUE(result.unaligned.empty());
  EXPECT_TRUE(result.reordered);
  EXPECT_EQ(result.padding_tensors, 0u);
  EXPECT_THAT(tensor_names(out), ElementsAre("a", "b", "scale"));
  expect_planner_maps(out, 64, {"a", "scale", "b"});
  expect_python_accepts_safetensors(in, out, 64, {});
}

TEST(RealignSafetensors, MetadataIsKeptInOrder) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  const std::string out = dir / "out.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());
  realign(in, out);
  const Model source = open_model(in);
  const Model realigned = open_model(out);
  ASSERT_EQ(realigned.metadata().size(), source.metadata().size());
  for (std::size_t i = 0; i < source.metadata().size(); ++i) {
    EXPECT_EQ(realigned.metadata()[i].key, source.metadata()[i].key);
    EXPECT_TRUE(same_value(realigned.metadata()[i].value, source.metadata()[i].value));
  }
}

TEST(RealignSafetensors, PaddingNamesAvoidTheModelsOwnNames) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  const std::string out = dir / "out.safetensors";
  testing::SafetensorsBuilder builder;
  builder.add("__padding_0__", "U8", {3}).add("x", "U8", {3}).add("y", "U8", {3});
  write_safetensors_fixture(in, builder);
  const RealignResult result = realign(in, out, {.padding_tensors = true});
  EXPECT_EQ(result.padding_tensors, 2u);
  EXPECT_THAT(tensor_names(out),
              ElementsAre("__padding_0__", "__padding_1__", "x", "__padding_2__", "y"));
  expect_same_tensors(in, out);
}

// --- GGUF ---

// Takes the stored type itself, not the variant: g++ 12 with the sanitizers warns about
// moving a variant that holds an array out of a by-value parameter (a false positive).
template <typename Stored>
MetadataValue value(MetadataType type, Stored v) {
  MetadataValue result;
  result.type = type;
  result.value = std::move(v);
  return result;
}

std::vector<std::pair<std::string, MetadataValue>> gguf_fixture_metadata() {
  using T = MetadataType;
  MetadataValue strings{.type = T::array, .element_type = T::string};
  strings.value =
      MetadataArray{value(T::string, std::string("a")), value(T::string, std::string("bc"))};
  MetadataValue nested{.type = T::array, .element_type = T::array};
  MetadataValue inner{.type = T::array, .element_type = T::u16};
  inner.value = MetadataArray{value(T::u16, std::uint64_t{7})};
  nested.value = MetadataArray{inner};
  return {{"general.architecture", value(T::string, std::string("llama"))},
          {"t.f32", value(T::f32, static_cast<double>(0.1f))},
          {"t.i64", value(T::i64, std::int64_t{-5})},
          {"t.bool", value(T::boolean, true)},
          {"t.strings", strings},
          {"t.nested", nested}};
}

const std::vector<TensorToWrite> kGgufTensors = {
    {"token_embd.weight", DType::F16, {7, 16}},     // 224 B
    {"blk.0.attn_q.weight", DType::Q8_0, {3, 32}},  // 102 B
    {"blk.0.attn_norm.weight", DType::F32, {5}},    // 20 B
    {"output.weight", DType::F32, {2, 8}},          // 64 B
};

void expect_same_gguf_metadata(const std::string& in, const std::string& out,
                               std::uint32_t alignment) {
  const Model source = open_model(in);
  const Model realigned = open_model(out);
  std::vector<const MetadataEntry*> kept;
  for (const MetadataEntry& entry : realigned.metadata()) {
    if (entry.key != "general.alignment") kept.push_back(&entry);
  }
  std::vector<const MetadataEntry*> expected;
  for (const MetadataEntry& entry : source.metadata()) {
    if (entry.key != "general.alignment") expected.push_back(&entry);
  }
  ASSERT_EQ(kept.size(), expected.size());
  for (std::size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i]->key, expected[i]->key);
    EXPECT_TRUE(same_value(kept[i]->value, expected[i]->value)) << kept[i]->key;
  }
  const MetadataEntry* key = realigned.find_metadata("general.alignment");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(key->value.type, MetadataType::u32);
  EXPECT_EQ(std::get<std::uint64_t>(key->value.value), alignment);
  EXPECT_EQ(realigned.files()[0].alignment, alignment);
}

void expect_gguf_py_accepts(const std::string& in, const std::string& out,
                            std::uint32_t alignment) {
  if (!fs::exists(fs::path(WEIGHTMAP_LLAMA_SRC_DIR) / "gguf-py")) {
    GTEST_SKIP() << "llama.cpp's gguf-py is missing: run scripts/fetch-llama.sh";
  }
  if (const auto failure = test::run_python_script("gguf_check_realigned.py",
                                                   {in, out, std::to_string(alignment)})) {
    ADD_FAILURE() << *failure;
  }
}

TEST(RealignGguf, To64And256KeepsTensorOrderMetadataAndBytes) {
  TempDir dir;
  const std::string in = dir / "in.gguf";
  write_gguf(in, kGgufTensors, fill_pattern, {.metadata = gguf_fixture_metadata()});
  const std::vector<std::string> names = tensor_names(in);
  for (const std::uint32_t alignment : {64u, 256u}) {
    SCOPED_TRACE(alignment);
    const std::string out = dir / fmt::format("out{}.gguf", alignment);
    const RealignResult result = realign(in, out, {.alignment = alignment});
    EXPECT_EQ(result.format, FileFormat::gguf);
    EXPECT_FALSE(result.reordered);
    EXPECT_TRUE(result.unaligned.empty());
    EXPECT_EQ(tensor_names(out), names);
    expect_same_tensors(in, out);
    expect_same_gguf_metadata(in, out, alignment);
    expect_planner_maps(out, alignment, names);
    expect_gguf_py_accepts(in, out, alignment);
  }
}

TEST(RealignGguf, ReplacesGeneralAlignmentWhereItStands) {
  TempDir dir;
  const std::string in = dir / "in.gguf";
  const std::string out = dir / "out.gguf";
  auto metadata = gguf_fixture_metadata();
  metadata.insert(metadata.begin() + 1,
                  {"general.alignment", value(MetadataType::u32, std::uint64_t{32})});
  write_gguf(in, kGgufTensors, fill_pattern, {.metadata = metadata});
  realign(in, out, {.alignment = 128});
  const Model model = open_model(out);
  ASSERT_EQ(model.metadata().size(), metadata.size());
  EXPECT_EQ(model.metadata()[1].key, "general.alignment");
  expect_same_gguf_metadata(in, out, 128);
  expect_gguf_py_accepts(in, out, 128);
}

TEST(RealignGguf, AVocabularyFileWrittenByGgufPyKeepsEveryValue) {
  const fs::path vocab = fs::path(WEIGHTMAP_LLAMA_SRC_DIR) / "models/ggml-vocab-llama-spm.gguf";
  if (!fs::exists(vocab)) GTEST_SKIP() << vocab << " is missing: run scripts/fetch-llama.sh";
  TempDir dir;
  const std::string out = dir / "vocab.gguf";
  realign(vocab.string(), out, {.alignment = 64});
  expect_same_gguf_metadata(vocab.string(), out, 64);
  expect_gguf_py_accepts(vocab.string(), out, 64);
}

// --- errors ---

std::string realign_error(const std::string& in, const std::string& out,
                          const RealignOptions& options = {}) {
  try {
    realign(in, out, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(RealignErrors, AlignmentMustBeAPowerOfTwoInRange) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());
  const std::string out = dir / "out.safetensors";
  EXPECT_EQ(realign_error(in, out, {.alignment = 48}),
            "the alignment is 48; it must be a power of two from 8 to 1048576");
  EXPECT_EQ(realign_error(in, out, {.alignment = 4}),
            "the alignment is 4; it must be a power of two from 8 to 1048576");
  EXPECT_EQ(realign_error(in, out, {.alignment = 2u << 20}),
            "the alignment is 2097152; it must be a power of two from 8 to 1048576");
  EXPECT_FALSE(fs::exists(out));
}

TEST(RealignErrors, OutputThatIsTheInputFileIsRefusedUnderAnyName) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());
  const auto before = fs::file_size(in);
  fs::create_symlink(in, dir / "link.safetensors");
  fs::create_hard_link(in, dir / "hard.safetensors");
  for (const std::string& out : {in, dir / "link.safetensors", dir / "hard.safetensors",
                                 (dir.path() / "." / "in.safetensors").string()}) {
    EXPECT_EQ(realign_error(in, out),
              fmt::format("{}: the output is the input file {} itself; weightmap never writes "
                          "over an input, so write to another path",
                          out, in));
  }
  EXPECT_EQ(fs::file_size(in), before);
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_FALSE(entry.path().filename().string().starts_with(".")) << entry.path();
  }
}

TEST(RealignErrors, UnreadableOrUnsupportedInputsAreNamed) {
  TempDir dir;
  const std::string out = dir / "out.safetensors";
  EXPECT_EQ(realign_error(dir / "missing.safetensors", out),
            fmt::format("{}: cannot open: No such file or directory", dir / "missing.safetensors"));
  testing::write_file(dir / "notes.txt", std::string_view("not a model"));
  EXPECT_EQ(realign_error(dir / "notes.txt", out),
            fmt::format("{}: not a model file weightmap can read (expected safetensors, GGUF or "
                        "a PyTorch zip checkpoint) (byte 0)",
                        dir / "notes.txt"));
  fs::create_directory(dir / "folder");
  write_safetensors_fixture(dir / "folder/a.safetensors", odd_sizes_builder());
  EXPECT_EQ(realign_error(dir / "folder", out),
            fmt::format("{}: realign rewrites one model file, not a folder or a shard index; "
                        "realign each file of it",
                        dir / "folder"));
  EXPECT_FALSE(fs::exists(out));
}

TEST(RealignErrors, AnOutputFolderThatDoesNotExistIsNamedAndNothingIsLeftBehind) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());
  const std::string out = dir / "no/such/folder/out.safetensors";
  EXPECT_EQ(realign_error(in, out),
            fmt::format("{}: cannot create a file in its folder: No such file or directory", out));
}

TEST(RealignErrors, SuccessLeavesNoTemporaryFileAndReplacesAnExistingOutput) {
  TempDir dir;
  const std::string in = dir / "in.safetensors";
  const std::string out = dir / "out.safetensors";
  write_safetensors_fixture(in, odd_sizes_builder());
  testing::write_file(out, std::string_view("old contents"));
  realign(in, out);
  expect_same_tensors(in, out);
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  EXPECT_THAT(files, ElementsAre("in.safetensors", "out.safetensors"));
}

}  // namespace
}  // namespace weightmap
