// The safetensors and GGUF writers: every file they write reads back through our readers
// with the same names, dtypes, shapes, metadata and bytes; gguf-py reads our GGUF files too.
#include "weightmap/writer.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdio.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "io/file_reader.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/shell_command.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Every byte of every tensor is a function of (tensor, offset), so a reader can check any
// byte without the writer's help.
std::byte pattern_byte(std::size_t tensor, std::uint64_t offset) {
  return static_cast<std::byte>((tensor * 37 + offset) % 251);
}

void fill_pattern(std::size_t tensor, std::uint64_t offset, std::span<std::byte> out) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern_byte(tensor, offset + i);
}

std::vector<std::byte> read_range(const std::string& path, std::uint64_t offset, std::uint64_t n) {
  const io::FileReader reader(path);
  std::vector<std::byte> bytes(static_cast<std::size_t>(n));
  reader.read_at(offset, bytes);
  return bytes;
}

std::vector<std::byte> read_all(const std::string& path) {
  return read_range(path, 0, fs::file_size(path));
}

// Opens `path` and checks the tensors against what was written.
Model expect_round_trip(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const WrittenFile& written) {
  const Model model = open_model(path);
  EXPECT_EQ(model.files().at(0).size, written.size);
  EXPECT_EQ(model.files().at(0).data_offset, written.data_offset);
  EXPECT_EQ(fs::file_size(path), written.size);
  const auto& read = model.tensors();
  EXPECT_EQ(read.size(), tensors.size());
  for (std::size_t i = 0; i < std::min(read.size(), tensors.size()); ++i) {
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(read[i].name, tensors[i].name);
    EXPECT_EQ(read[i].dtype, tensors[i].dtype);
    EXPECT_EQ(read[i].shape, tensors[i].shape);
    EXPECT_EQ(read[i].offset, written.tensor_offsets.at(i));
    const auto bytes = read_range(path, read[i].offset, read[i].nbytes);
    for (std::size_t b = 0; b < bytes.size(); ++b) {
      if (bytes[b] != pattern_byte(i, b)) {
        ADD_FAILURE() << "byte " << b << " differs";
        break;
      }
    }
  }
  return model;
}

template <typename F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// --- safetensors ---

std::vector<TensorToWrite> every_safetensors_dtype() {
  std::vector<TensorToWrite> tensors;
  for (const DTypeInfo& info : all_dtypes()) {
    if (info.safetensors_name.empty()) continue;
    // 12 elements: a whole number of blocks for the 6-bit (4 per block) and 4-bit types.
    tensors.push_back({fmt::format("layer.{}.weight", info.name), info.id, {3, 4}});
  }
  tensors.push_back({"scalar", DType::F32, {}});
  tensors.push_back({"empty", DType::F16, {0, 5}});
  return tensors;
}

TEST(WriterSafetensors, RoundTripsEveryDtype) {
  TempDir dir;
  const std::string path = dir / "all.safetensors";
  const auto tensors = every_safetensors_dtype();
  const WrittenFile written = write_safetensors(path, tensors, fill_pattern);
  expect_round_trip(path, tensors, written);
  EXPECT_EQ(written.data_offset % 8, 0u);
  // No holes: each tensor starts where the one before ended.
  const Model model = open_model(path);
  std::uint64_t next = written.data_offset;
  for (const auto& t : model.tensors()) {
    EXPECT_EQ(t.offset, next) << t.name;
    next = t.offset + t.nbytes;
  }
  EXPECT_EQ(next, written.size);
}

TEST(WriterSafetensors, EscapesNamesAndMetadata) {
  TempDir dir;
  const std::string path = dir / "names.safetensors";
  const std::vector<TensorToWrite> tensors = {
      {"quote\"back\\slash", DType::F16, {2}},
      {"new\nline\ttab\x01", DType::F16, {2}},
      {"unicode.\xc3\xbc.\xe2\x82\xac", DType::BF16, {1, 1}},
  };
  SafetensorsWriteOptions options;
  options.metadata = {{"format", "pt"}, {"say \"hi\"", "a\\b\nc"}, {"empty", ""}};
  const WrittenFile written = write_safetensors(path, tensors, fill_pattern, options);
  const Model model = expect_round_trip(path, tensors, written);
  ASSERT_EQ(model.metadata().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(model.metadata()[i].key, options.metadata[i].first);
    EXPECT_EQ(std::get<std::string>(model.metadata()[i].value.value), options.metadata[i].second);
  }
}

TEST(WriterSafetensors, PadsTheHeaderSoDataStartsAtTheChosenAlignment) {
  TempDir dir;
  for (const std::uint32_t alignment : {8u, 64u, 4096u, 1u << 20}) {
    SCOPED_TRACE(alignment);
    const std::string path = dir / fmt::format("a{}.safetensors", alignment);
    const std::vector<TensorToWrite> tensors = {{"a", DType::F32, {5}}, {"b", DType::F16, {3}}};
    SafetensorsWriteOptions options;
    options.data_alignment = alignment;
    const WrittenFile written = write_safetensors(path, tensors, fill_pattern, options);
    EXPECT_EQ(written.data_offset % alignment, 0u);
    expect_round_trip(path, tensors, written);
    // The padding is spaces at the end of the JSON.
    const auto head = read_range(path, written.data_offset - 1, 1);
    EXPECT_EQ(head[0], std::byte{' '});
  }
}

TEST(WriterSafetensors, HuggingFaceOrderStoresLargestElementsFirstThenByName) {
  TempDir dir;
  const std::string path = dir / "hf.safetensors";
  const std::vector<TensorToWrite> tensors = {{"unet.b.weight", DType::F16, {3}},
                                              {"unet.norm.bias", DType::F32, {5}},
                                              {"position_ids", DType::I64, {1, 7}},
                                              {"unet.a.weight", DType::F16, {4}}};
  SafetensorsWriteOptions options;
  options.hugging_face_order = true;
  const WrittenFile written = write_safetensors(path, tensors, fill_pattern, options);
  const Model model = open_model(path);
  std::vector<std::string> stored;
  for (const auto& t : model.tensors()) stored.push_back(t.name);
  EXPECT_EQ(stored, (std::vector<std::string>{"position_ids", "unet.norm.bias", "unet.a.weight",
                                              "unet.b.weight"}));
  // The source was asked by input index, and the offsets follow the input order.
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo* t = model.find(tensors[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->offset, written.tensor_offsets[i]) << tensors[i].name;
    const auto bytes = read_range(path, t->offset, t->nbytes);
    for (std::size_t b = 0; b < bytes.size(); ++b) {
      ASSERT_EQ(bytes[b], pattern_byte(i, b)) << tensors[i].name << " byte " << b;
    }
  }
  EXPECT_EQ(written.data_offset % 8, 0u);
}

TEST(WriterSafetensors, ChunkSizeDoesNotChangeTheFile) {
  TempDir dir;
  const auto tensors = every_safetensors_dtype();
  write_safetensors(dir / "big.safetensors", tensors, fill_pattern);
  SafetensorsWriteOptions options;
  options.chunk_bytes = 7;
  write_safetensors(dir / "small.safetensors", tensors, fill_pattern, options);
  EXPECT_EQ(read_all(dir / "big.safetensors"), read_all(dir / "small.safetensors"));
}

TEST(WriterSafetensors, AsksForBytesInOrderInChunks) {
  TempDir dir;
  const std::vector<TensorToWrite> tensors = {{"a", DType::F32, {10}}, {"b", DType::F32, {3}}};
  SafetensorsWriteOptions options;
  options.chunk_bytes = 16;
  std::vector<std::array<std::uint64_t, 3>> calls;
  write_safetensors(
      dir / "x.safetensors", tensors,
      [&](std::size_t t, std::uint64_t offset, std::span<std::byte> out) {
        calls.push_back({t, offset, out.size()});
        fill_pattern(t, offset, out);
      },
      options);
  ASSERT_FALSE(calls.empty());
  std::array<std::uint64_t, 2> next{};
  for (const auto& [t, offset, n] : calls) {
    EXPECT_LE(n, 16u);
    EXPECT_EQ(offset, next[t]);
    next[t] += n;
  }
  EXPECT_EQ(next[0], 40u);
  EXPECT_EQ(next[1], 12u);
}

TEST(WriterSafetensors, RejectsBadInputsWithoutWritingAFile) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  const auto write = [&](std::vector<TensorToWrite> tensors, SafetensorsWriteOptions options = {}) {
    return error_text([&] { write_safetensors(path, tensors, fill_pattern, options); });
  };
  EXPECT_EQ(write({{"", DType::F32, {1}}}), path + ": tensor 0 has an empty name");
  EXPECT_EQ(write({{"a", DType::F32, {1}}, {"b", DType::F32, {1}}, {"a", DType::F16, {1}}}),
            path + ": tensor name appears twice (tensors 0 and 2) (tensor a)");
  EXPECT_EQ(write({{"bad\xff", DType::F32, {1}}}),
            path + ": tensor name is not valid UTF-8 (tensor bad\\xff)");
  EXPECT_EQ(write({{"q", DType::Q4_0, {32}}}),
            path + ": safetensors cannot hold q4_0 tensors (tensor q)");
  EXPECT_EQ(
      write({{"f4", DType::F4, {3}}}),
      path + ": 3 elements are not a whole number of f4 blocks (2 elements each) (tensor f4)");
  EXPECT_EQ(write({{"huge", DType::F32, {1ull << 40, 1ull << 30}}}),
            path +
                ": shape [1099511627776, 1073741824] has more elements than fit in 63 bits "
                "(tensor huge)");
  EXPECT_EQ(write({{"big", DType::F64, {1ull << 62}}}),
            path +
                ": shape [4611686018427387904] of f64 has a size in bytes that overflows 64 "
                "bits (tensor big)");
  EXPECT_EQ(write({{"__metadata__", DType::F32, {1}}}),
            path +
                ": the tensor name __metadata__ is reserved for the header's metadata (tensor "
                "__metadata__)");
  SafetensorsWriteOptions twelve;
  twelve.data_alignment = 12;
  EXPECT_EQ(write({}, twelve),
            path +
                ": the safetensors data alignment is 12; it must be a power of two from 8 to "
                "1048576");
  SafetensorsWriteOptions keys;
  keys.metadata = {{"k", "1"}, {"k", "2"}};
  EXPECT_EQ(write({}, keys), path + ": metadata key \"k\" appears twice");
  keys.metadata = {{"k", "\xc0\x80"}};
  EXPECT_EQ(write({}, keys), path + ": the value of metadata key \"k\" is not valid UTF-8");
  EXPECT_EQ(write({{"x", static_cast<DType>(999), {1}}}),
            path + ": unknown tensor type id 999 (tensor x)");
  EXPECT_FALSE(fs::exists(path));
}

TEST(WriterSafetensors, ASourceThatThrowsLeavesNoFile) {
  TempDir dir;
  const std::string path = dir / "partial.safetensors";
  const std::vector<TensorToWrite> tensors = {{"a", DType::F32, {4}}, {"b", DType::F32, {4}}};
  const auto source = [](std::size_t t, std::uint64_t, std::span<std::byte>) {
    if (t == 1) throw Error(ErrorCode::io, "source failed");
  };
  EXPECT_EQ(error_text([&] { write_safetensors(path, tensors, source); }),
            path + ": source failed (tensor b)");
  EXPECT_FALSE(fs::exists(path));
  const auto other = [](std::size_t, std::uint64_t, std::span<std::byte>) {
    throw std::runtime_error("not ours");
  };
  EXPECT_THROW(write_gguf(path, tensors, other), std::runtime_error);
  EXPECT_FALSE(fs::exists(path));
}

TEST(WriterSafetensors, UnwritablePathIsAnIoError) {
  TempDir dir;
  const std::string path = dir / "missing/x.safetensors";
  EXPECT_EQ(error_text([&] { write_safetensors(path, {}, fill_pattern); }),
            path + ": cannot create a file in its folder: No such file or directory");
}

// --- GGUF ---

MetadataValue scalar(MetadataType type, decltype(MetadataValue::value) value) {
  return {.type = type, .element_type = MetadataType::string, .value = std::move(value)};
}

MetadataValue array_of(MetadataType element, MetadataArray items) {
  return {.type = MetadataType::array, .element_type = element, .value = std::move(items)};
}

// One key per value type, arrays of several types and an array of arrays.
std::vector<std::pair<std::string, MetadataValue>> every_metadata_type() {
  using T = MetadataType;
  return {
      {"general.architecture", scalar(T::string, std::string("llama"))},
      {"t.u8", scalar(T::u8, std::uint64_t{255})},
      {"t.i8", scalar(T::i8, std::int64_t{-128})},
      {"t.u16", scalar(T::u16, std::uint64_t{65535})},
      {"t.i16", scalar(T::i16, std::int64_t{-32768})},
      {"t.u32", scalar(T::u32, std::uint64_t{4294967295u})},
      {"t.i32", scalar(T::i32, std::int64_t{-2147483647 - 1})},
      {"t.u64", scalar(T::u64, std::uint64_t{18446744073709551615ull})},
      {"t.i64", scalar(T::i64, std::int64_t{-9223372036854775807 - 1})},
      {"t.f32", scalar(T::f32, 0.25)},
      {"t.f64", scalar(T::f64, -1e300)},
      {"t.bool", scalar(T::boolean, true)},
      {"t.string", scalar(T::string, std::string("h\xc3\xa9llo \"quoted\""))},
      {"t.empty_string", scalar(T::string, std::string())},
      {"t.strings", array_of(T::string, {scalar(T::string, std::string("a")),
                                         scalar(T::string, std::string("bc"))})},
      {"t.i32s",
       array_of(T::i32, {scalar(T::i32, std::int64_t{-1}), scalar(T::i32, std::int64_t{7})})},
      {"t.f32s", array_of(T::f32, {scalar(T::f32, 1.5), scalar(T::f32, -2.0)})},
      {"t.bools", array_of(T::boolean, {scalar(T::boolean, false), scalar(T::boolean, true)})},
      {"t.empty_array", array_of(T::u8, {})},
      {"t.nested",
       array_of(T::array, {array_of(T::u16, {scalar(T::u16, std::uint64_t{1})}),
                           array_of(T::string, {scalar(T::string, std::string("x"))})})},
  };
}

void expect_same_value(const MetadataValue& read, const MetadataValue& written) {
  EXPECT_EQ(read.type, written.type);
  if (read.type == MetadataType::array) {
    EXPECT_EQ(read.element_type, written.element_type);
    const auto& a = std::get<MetadataArray>(read.value);
    const auto& b = std::get<MetadataArray>(written.value);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) expect_same_value(a[i], b[i]);
  } else {
    ASSERT_EQ(read.value.index(), written.value.index());
    std::visit(
        [&](const auto& value) {
          using Held = std::decay_t<decltype(value)>;
          if constexpr (!std::is_same_v<Held, MetadataArray>) {
            EXPECT_EQ(value, std::get<Held>(written.value));
          }
        },
        read.value);
  }
}

std::vector<TensorToWrite> every_ggml_dtype() {
  std::vector<TensorToWrite> tensors;
  for (const DTypeInfo& info : all_dtypes()) {
    if (!info.in_ggml) continue;
    tensors.push_back({fmt::format("blk.0.{}", info.name), info.id, {3, 2 * info.block_size}});
  }
  tensors.push_back({"blk.0.4d", DType::F32, {2, 3, 5, 7}});
  tensors.push_back({"blk.0.1d", DType::F16, {5}});
  return tensors;
}

TEST(WriterGguf, RoundTripsEveryGgmlTypeAndEveryMetadataType) {
  TempDir dir;
  const std::string path = dir / "all.gguf";
  const auto tensors = every_ggml_dtype();
  GgufWriteOptions options;
  options.metadata = every_metadata_type();
  const WrittenFile written = write_gguf(path, tensors, fill_pattern, options);
  const Model model = expect_round_trip(path, tensors, written);
  EXPECT_EQ(model.files()[0].alignment, 32u);
  EXPECT_EQ(written.size % 32, 0u);  // the last tensor is padded too
  for (const auto& t : model.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  ASSERT_EQ(model.metadata().size(), options.metadata.size());
  for (std::size_t i = 0; i < options.metadata.size(); ++i) {
    SCOPED_TRACE(options.metadata[i].first);
    EXPECT_EQ(model.metadata()[i].key, options.metadata[i].first);
    expect_same_value(model.metadata()[i].value, options.metadata[i].second);
  }
}

TEST(WriterGguf, ZeroesThePadding) {
  TempDir dir;
  const std::string path = dir / "pad.gguf";
  const std::vector<TensorToWrite> tensors = {{"a", DType::F32, {3}}, {"b", DType::F16, {5}}};
  const WrittenFile written = write_gguf(path, tensors, fill_pattern);
  const auto bytes = read_all(path);
  // Between the header's end and the data start, and after each tensor's bytes.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> data = {{written.tensor_offsets[0], 12},
                                                               {written.tensor_offsets[1], 10}};
  for (std::uint64_t i = written.data_offset; i < bytes.size(); ++i) {
    const bool in_tensor = (i >= data[0].first && i < data[0].first + data[0].second) ||
                           (i >= data[1].first && i < data[1].first + data[1].second);
    if (!in_tensor) {
      EXPECT_EQ(bytes[i], std::byte{0}) << "byte " << i;
    }
  }
  EXPECT_EQ(written.tensor_offsets[1], written.data_offset + 32);
  EXPECT_EQ(written.size, written.data_offset + 64);
}

TEST(WriterGguf, StoresDimensionsInnermostFirst) {
  TempDir dir;
  const std::string path = dir / "ne.gguf";
  write_gguf(path, {{"t", DType::F32, {2, 3, 5}}}, fill_pattern);
  const auto bytes = read_all(path);
  // magic 4, version 4, counts 16, name length 8 + "t", n_dims 4, then ne[0..2].
  std::array<std::uint64_t, 3> ne{};
  std::memcpy(ne.data(), bytes.data() + 4 + 4 + 16 + 8 + 1 + 4, sizeof ne);
  EXPECT_EQ(ne, (std::array<std::uint64_t, 3>{5, 3, 2}));
}

TEST(WriterGguf, AlignmentOptionAddsGeneralAlignment) {
  TempDir dir;
  const std::vector<TensorToWrite> tensors = {{"a", DType::F32, {3}}, {"b", DType::Q8_0, {32}}};
  {
    const std::string path = dir / "a64.gguf";
    GgufWriteOptions options;
    options.alignment = 64;
    const WrittenFile written = write_gguf(path, tensors, fill_pattern, options);
    const Model model = expect_round_trip(path, tensors, written);
    EXPECT_EQ(model.files()[0].alignment, 64u);
    const auto* key = model.find_metadata("general.alignment");
    ASSERT_NE(key, nullptr);
    EXPECT_EQ(key->value.type, MetadataType::u32);
    EXPECT_EQ(std::get<std::uint64_t>(key->value.value), 64u);
    for (const auto offset : written.tensor_offsets) EXPECT_EQ(offset % 64, 0u);
  }
  {
    // The default needs no key.
    const std::string path = dir / "a32.gguf";
    GgufWriteOptions options;
    options.alignment = 32;
    write_gguf(path, tensors, fill_pattern, options);
    EXPECT_EQ(open_model(path).find_metadata("general.alignment"), nullptr);
  }
  {
    // A key in the metadata sets the alignment where it stands.
    const std::string path = dir / "meta4096.gguf";
    GgufWriteOptions options;
    options.metadata = {{"general.alignment", scalar(MetadataType::u32, std::uint64_t{4096})},
                        {"general.name", scalar(MetadataType::string, std::string("x"))}};
    const WrittenFile written = write_gguf(path, tensors, fill_pattern, options);
    const Model model = expect_round_trip(path, tensors, written);
    EXPECT_EQ(model.files()[0].alignment, 4096u);
    EXPECT_EQ(model.metadata().size(), 2u);
    EXPECT_EQ(written.data_offset, 4096u);
  }
}

TEST(WriterGguf, RejectsBadInputsWithoutWritingAFile) {
  TempDir dir;
  const std::string path = dir / "bad.gguf";
  using T = MetadataType;
  const auto write = [&](std::vector<TensorToWrite> tensors, GgufWriteOptions options = {}) {
    return error_text([&] { write_gguf(path, tensors, fill_pattern, options); });
  };
  const auto with_metadata = [&](std::string key, MetadataValue value) {
    GgufWriteOptions options;
    options.metadata = {{std::move(key), std::move(value)}};
    return write({}, options);
  };
  EXPECT_EQ(write({{"u", DType::U8, {4}}}), path + ": GGUF cannot hold u8 tensors (tensor u)");
  EXPECT_EQ(write({{"q", DType::Q4_0, {2, 48}}}),
            path +
                ": rows of 48 elements are not a whole number of q4_0 blocks (32 elements "
                "each) (tensor q)");
  EXPECT_EQ(write({{"five", DType::F32, {1, 1, 1, 1, 1}}}),
            path + ": tensor has 5 dimensions; GGUF allows at most 4 (tensor five)");
  EXPECT_EQ(write({{"a", DType::F32, {1}}, {"a", DType::F32, {1}}}),
            path + ": tensor name appears twice (tensors 0 and 1) (tensor a)");
  GgufWriteOptions odd;
  odd.alignment = 48;
  EXPECT_EQ(write({}, odd),
            path + ": the GGUF alignment is 48; it must be a power of two from 1 to 1048576");
  GgufWriteOptions conflict;
  conflict.alignment = 64;
  conflict.metadata = {{"general.alignment", scalar(T::u32, std::uint64_t{32})}};
  EXPECT_EQ(write({}, conflict),
            path + ": the metadata says general.alignment = 32 but the alignment option is 64");
  EXPECT_EQ(with_metadata("general.alignment", scalar(T::u64, std::uint64_t{32})),
            path + ": general.alignment must be a u32, not a u64");
  EXPECT_EQ(with_metadata("general.alignment", scalar(T::u32, std::uint64_t{0})),
            path + ": general.alignment is 0; it must be a power of two from 1 to 1048576");
  EXPECT_EQ(with_metadata("k", scalar(T::u8, std::uint64_t{256})),
            path + ": metadata key \"k\": 256 does not fit a u8");
  EXPECT_EQ(with_metadata("k", scalar(T::i16, std::int64_t{-40000})),
            path + ": metadata key \"k\": -40000 does not fit an i16");
  EXPECT_EQ(with_metadata("k", scalar(T::f32, 1e39)),
            path + ": metadata key \"k\": 1e+39 does not fit an f32");
  EXPECT_EQ(with_metadata("k", scalar(T::u32, std::int64_t{1})),
            path + ": metadata key \"k\": a u32 value must hold an unsigned integer");
  EXPECT_EQ(with_metadata("k", array_of(T::i32, {scalar(T::i32, std::int64_t{1}),
                                                 scalar(T::u32, std::uint64_t{1})})),
            path + ": metadata key \"k\": array item 1 is a u32, not a i32 like the array says");
  EXPECT_EQ(with_metadata("", scalar(T::u8, std::uint64_t{1})), path + ": a metadata key is empty");
  EXPECT_EQ(with_metadata("bad\xff", scalar(T::u8, std::uint64_t{1})),
            path + ": metadata key \"bad\\xff\" is not valid UTF-8");
  GgufWriteOptions twice;
  twice.metadata = {{"k", scalar(T::u8, std::uint64_t{1})}, {"k", scalar(T::u8, std::uint64_t{2})}};
  EXPECT_EQ(write({}, twice), path + ": metadata key \"k\" appears twice");
  EXPECT_FALSE(fs::exists(path));
}

// --- gguf-py ---

// tests/python/gguf_check_written.py knows these keys, tensors and the byte pattern.
TEST(WriterGguf, GgufPyReadsOurFileWithValuesAndTensorsIntact) {
  if (!fs::exists(fs::path(WEIGHTMAP_LLAMA_SRC_DIR) / "gguf-py")) {
    GTEST_SKIP() << "llama.cpp's gguf-py is missing: run scripts/fetch-llama.sh";
  }
  TempDir dir;
  const std::string path = dir / "ours.gguf";
  GgufWriteOptions options;
  options.metadata = every_metadata_type();
  options.alignment = 64;
  const std::vector<TensorToWrite> tensors = {
      {"token_embd.weight", DType::F16, {7, 16}},
      {"blk.0.attn_q.weight", DType::Q8_0, {4, 64}},
      {"blk.0.attn_norm.weight", DType::F32, {16}},
      {"blk.0.ffn_up.weight", DType::BF16, {2, 3, 8}},
      {"blk.0.ffn_down.weight", DType::Q4_K, {2, 256}},
  };
  write_gguf(path, tensors, fill_pattern, options);
  if (const auto failure = test::run_python_script("gguf_check_written.py", {path}))
    FAIL() << *failure;
}

}  // namespace
}  // namespace weightmap
