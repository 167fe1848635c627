// GGUF files from strangers: every way a header can be broken must end in one weightmap::Error
// that names the file, the problem and where it sits, never in a crash or a huge allocation.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "format/readers.hpp"
#include "support/gguf_bytes.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

using test::GgufBytes;
using test::GgufType;

constexpr std::uint32_t kF32 = 0;
constexpr std::uint32_t kQ4_0 = 2;

FileIndex read(const GgufBytes& file) {
  const io::MemoryByteSource source("bad.gguf", file.span());
  return format::read_gguf(source);
}

// One tensor "w" of 8 f32 values: header 24 bytes, info 33 bytes (offset field at byte 49),
// data section at byte 64.
GgufBytes one_tensor_file(std::uint64_t relative_offset, std::size_t data_bytes) {
  GgufBytes file;
  file.header(1, 0).tensor_info("w", {8}, kF32, relative_offset).pad_to(32).zeros(data_bytes);
  return file;
}

struct MalformedCase {
  std::string name;
  GgufBytes file;
  ErrorCode code;
  std::string what;  // the whole of Error::what()
};

std::vector<MalformedCase> malformed_cases() {
  std::vector<MalformedCase> cases;
  const auto add = [&](std::string name, GgufBytes file, ErrorCode code, std::string what) {
    cases.push_back({std::move(name), std::move(file), code, std::move(what)});
  };

  // --- truncated at each structural boundary ---
  add("TruncatedAfterMagic", GgufBytes().raw("GGUF"), ErrorCode::io,
      "bad.gguf: the file ends inside the version: 4 bytes needed, 0 left (byte 4)");
  add("TruncatedAfterVersion", GgufBytes().raw("GGUF").u32(3), ErrorCode::io,
      "bad.gguf: the file ends inside the tensor count: 8 bytes needed, 0 left (byte 8)");
  add("TruncatedAfterTensorCount", GgufBytes().raw("GGUF").u32(3).u64(0), ErrorCode::io,
      "bad.gguf: the file ends inside the metadata key count: 8 bytes needed, 0 left (byte 16)");
  add("TruncatedAfterCountsWithKeys", GgufBytes().header(0, 1), ErrorCode::malformed,
      "bad.gguf: metadata key count 1 is impossible: the 0 bytes left in the file hold at most 0 "
      "keys (byte 16)");
  add("TruncatedAfterCountsWithTensors", GgufBytes().header(1, 0), ErrorCode::malformed,
      "bad.gguf: tensor count 1 is impossible: the 0 bytes left in the file hold at most 0 "
      "tensor infos (byte 8)");
  add("TruncatedMidKey", GgufBytes().header(0, 1).u64(40).raw("general."), ErrorCode::malformed,
      "bad.gguf: metadata key length 40 runs past the end of the file (8 bytes left) (byte 24)");
  add("TruncatedMidStringValue",
      GgufBytes().header(0, 1).str("general.name").type(GgufType::string).u64(10).raw("abc"),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"general.name\": string value length 10 runs past the end of the "
      "file (3 bytes left) (byte 48)");
  add("TruncatedMidU32Value", GgufBytes().header(0, 1).str("k.count").type(GgufType::u32).u8(1),
      ErrorCode::io,
      "bad.gguf: metadata key \"k.count\": the file ends inside the metadata value: 4 bytes "
      "needed, 1 left (byte 43)");
  add("TruncatedMidArray",
      GgufBytes()
          .header(0, 1)
          .str("k.list")
          .type(GgufType::array)
          .type(GgufType::u32)
          .u64(3)
          .u32(1),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"k.list\": array of 3 u32 values cannot fit in the 4 bytes left in "
      "the file (byte 46)");
  add("TruncatedMidTensorInfo", GgufBytes().header(1, 0).str("token_embd.weight").u32(2).u64(4),
      ErrorCode::io,
      "bad.gguf: the file ends inside the tensor dimension: 8 bytes needed, 0 left (tensor "
      "token_embd.weight, byte 61)");
  add("TruncatedBeforeData", GgufBytes().header(1, 0).tensor_info("w", {8}, kF32, 0),
      ErrorCode::malformed,
      "bad.gguf: tensor data (32 bytes at offset 0 of the data section, which starts at byte 64) "
      "runs past the end of the file (57 bytes) (tensor w, byte 49)");

  // --- preamble ---
  add("WrongMagic", GgufBytes().raw("GGML").u32(3).u64(0).u64(0), ErrorCode::malformed,
      "bad.gguf: not a GGUF file: it starts with \"GGML\", not \"GGUF\" (byte 0)");
  add("Version1", GgufBytes().header(0, 0, 1), ErrorCode::unsupported,
      "bad.gguf: GGUF version 1 is not supported (only 2 and 3) (byte 4)");
  add("BigEndian", GgufBytes().header(0, 0, 0x03000000), ErrorCode::unsupported,
      "bad.gguf: the file is big-endian (its version field reads 0x03000000); only "
      "little-endian GGUF files are supported (byte 4)");
  add("UnknownVersion", GgufBytes().header(0, 0, 7), ErrorCode::unsupported,
      "bad.gguf: GGUF version 7 is not supported (only 2 and 3) (byte 4)");
  add("TensorCount2Pow62", GgufBytes().header(std::uint64_t{1} << 62, 0).zeros(64),
      ErrorCode::malformed,
      "bad.gguf: tensor count 4611686018427387904 is impossible: the 64 bytes left in the file "
      "hold at most 2 tensor infos (byte 8)");

  // --- metadata ---
  add("UnknownValueType", GgufBytes().header(0, 1).str("general.x").u32(13).u32(0),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"general.x\": unknown metadata value type 13 (byte 41)");
  add("UnknownArrayElementType",
      GgufBytes().header(0, 1).str("general.x").type(GgufType::array).u32(77).u64(0),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"general.x\": unknown metadata value type 77 (byte 45)");
  add("BoolValue2", GgufBytes().header(0, 1).str("general.flag").type(GgufType::boolean).u8(2),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"general.flag\": bool value 2 is neither 0 nor 1 (byte 48)");
  add("StringLengthBeyondFile",
      GgufBytes()
          .header(0, 1)
          .str("general.name")
          .type(GgufType::string)
          .u64(1ULL << 40)
          .raw("abc"),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"general.name\": string value length 1099511627776 runs past the "
      "end of the file (3 bytes left) (byte 48)");
  add("ArrayCount2Pow63",
      GgufBytes()
          .header(0, 1)
          .str("tokenizer.ggml.tokens")
          .type(GgufType::array)
          .type(GgufType::string)
          .u64(1ULL << 63),
      ErrorCode::malformed,
      "bad.gguf: metadata key \"tokenizer.ggml.tokens\": array of 9223372036854775808 string "
      "values cannot fit in the 0 bytes left in the file (byte 61)");
  {
    GgufBytes deep;
    deep.header(0, 1).str("general.deep").type(GgufType::array);
    for (int level = 0; level < 16; ++level) deep.type(GgufType::array).u64(1);
    deep.type(GgufType::u8).u64(0);
    add("ArraysNested17Deep", std::move(deep), ErrorCode::malformed,
        "bad.gguf: metadata key \"general.deep\": arrays are nested more than 16 deep (byte "
        "240)");
  }
  add("DuplicateKey", GgufBytes().header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2),
      ErrorCode::duplicate,
      "bad.gguf: metadata key \"a.b\" appears twice (first at byte 24) (byte 43)");
  add("EmptyKey", GgufBytes().header(0, 1).kv_u32("", 1).zeros(8), ErrorCode::malformed,
      "bad.gguf: metadata key is empty (byte 24)");
  add("NonUtf8Key", GgufBytes().header(0, 1).kv_u32("bad\xff", 1), ErrorCode::malformed,
      "bad.gguf: metadata key \"bad\\xff\" is not valid UTF-8 (byte 24)");
  add("Alignment0", GgufBytes().header(0, 1).kv_u32("general.alignment", 0), ErrorCode::malformed,
      "bad.gguf: general.alignment is 0; it must be a nonzero power of two (byte 53)");
  add("Alignment3", GgufBytes().header(0, 1).kv_u32("general.alignment", 3), ErrorCode::malformed,
      "bad.gguf: general.alignment is 3; it must be a nonzero power of two (byte 53)");
  add("AlignmentNotU32",
      GgufBytes().header(0, 1).str("general.alignment").type(GgufType::u64).u64(32),
      ErrorCode::malformed, "bad.gguf: general.alignment must be a u32, but it is a u64 (byte 53)");

  // --- tensor infos ---
  add("NonUtf8TensorName",
      GgufBytes().header(1, 0).tensor_info("w\xc0", {8}, kF32, 0).pad_to(32).zeros(32),
      ErrorCode::malformed, "bad.gguf: tensor name is not valid UTF-8 (tensor w\\xc0, byte 24)");
  add("DuplicateTensorName",
      GgufBytes()
          .header(2, 0)
          .tensor_info("w", {8}, kF32, 0)
          .tensor_info("w", {8}, kF32, 32)
          .pad_to(32)
          .zeros(64),
      ErrorCode::duplicate,
      "bad.gguf: tensor name appears twice (first at byte 24) (tensor w, byte 57)");
  add("FiveDimensions",
      GgufBytes().header(1, 0).tensor_info("w", {1, 1, 1, 1, 1}, kF32, 0).pad_to(32).zeros(4),
      ErrorCode::malformed,
      "bad.gguf: tensor has 5 dimensions; ggml supports at most 4 (tensor w, byte 33)");
  add("ElementCountOverflows64Bits",
      GgufBytes().header(1, 0).tensor_info("w", {1ULL << 32, 1ULL << 32}, kF32, 0).zeros(64),
      ErrorCode::malformed,
      "bad.gguf: tensor shape [4294967296, 4294967296] has more elements than ggml can count "
      "(2^63-1) (tensor w, byte 37)");
  add("ElementCountAboveInt64",
      GgufBytes().header(1, 0).tensor_info("w", {1ULL << 63}, kF32, 0).zeros(64),
      ErrorCode::malformed,
      "bad.gguf: tensor shape [9223372036854775808] has more elements than ggml can count "
      "(2^63-1) (tensor w, byte 37)");
  add("RowNotWholeBlocks",
      GgufBytes().header(1, 0).tensor_info("w", {33, 1}, kQ4_0, 0).pad_to(32).zeros(64),
      ErrorCode::malformed,
      "bad.gguf: rows of 33 elements are not a whole number of q4_0 blocks (32 elements each) "
      "(tensor w, byte 37)");
  add("TensorTypeId4", GgufBytes().header(1, 0).tensor_info("w", {8}, 4, 0).pad_to(32).zeros(32),
      ErrorCode::unknown_dtype, "bad.gguf: unknown ggml tensor type id 4 (tensor w, byte 45)");
  add("TensorTypeId999",
      GgufBytes().header(1, 0).tensor_info("w", {8}, 999, 0).pad_to(32).zeros(32),
      ErrorCode::unknown_dtype, "bad.gguf: unknown ggml tensor type id 999 (tensor w, byte 45)");
  add("OffsetNotAligned", one_tensor_file(16, 64), ErrorCode::malformed,
      "bad.gguf: tensor data offset 16 is not a multiple of the alignment 32 (tensor w, byte 49)");
  add("TensorPastEndOfFile", one_tensor_file(0, 16), ErrorCode::malformed,
      "bad.gguf: tensor data (32 bytes at offset 0 of the data section, which starts at byte 64) "
      "runs past the end of the file (80 bytes) (tensor w, byte 49)");
  add("OffsetNear2Pow64", one_tensor_file(~std::uint64_t{31}, 32), ErrorCode::malformed,
      "bad.gguf: tensor data (32 bytes at offset 18446744073709551584 of the data section, which "
      "starts at byte 64) runs past the end of the file (96 bytes) (tensor w, byte 49)");
  add("OverlappingTensors",
      GgufBytes()
          .header(2, 0)
          .tensor_info("a", {16}, kF32, 0)
          .tensor_info("b", {8}, kF32, 32)
          .pad_to(32)
          .zeros(64),
      ErrorCode::malformed,
      "bad.gguf: tensor data [128, 160) overlaps tensor \"a\" at [96, 160) (tensor b, byte 82)");
  add("OverlapFoundWhenListedOutOfOrder",
      GgufBytes()
          .header(3, 0)
          .tensor_info("late", {8}, kF32, 64)
          .tensor_info("early", {8}, kF32, 0)
          .tensor_info("wide", {16}, kF32, 32)
          .pad_to(32)
          .zeros(96),
      ErrorCode::malformed,
      "bad.gguf: tensor data [224, 256) overlaps tensor \"wide\" at [192, 256) (tensor late, byte "
      "52)");
  return cases;
}

class GgufMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(GgufMalformed, ThrowsOneErrorNamingFileProblemAndPlace) {
  const MalformedCase& c = GetParam();
  try {
    read(c.file);
    FAIL() << "no error for " << c.name;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), c.code) << error.what();
    EXPECT_EQ(std::string(error.what()), c.what);
    EXPECT_EQ(error.file(), "bad.gguf");
  }
}

INSTANTIATE_TEST_SUITE_P(Table, GgufMalformed, ::testing::ValuesIn(malformed_cases()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(GgufMalformedTable, HasAtLeast25Cases) { EXPECT_GE(malformed_cases().size(), 25u); }

// A small file using every structure: several value types, an array, tensors with data.
GgufBytes small_valid_file() {
  GgufBytes file;
  file.header(2, 4)
      .kv_string("general.architecture", "llama")
      .kv_u32("general.alignment", 32)
      .str("general.flag")
      .type(GgufType::boolean)
      .u8(1)
      .str("tokenizer.ggml.tokens")
      .type(GgufType::array)
      .type(GgufType::string)
      .u64(2)
      .str("a")
      .str("bc")
      .tensor_info("token_embd.weight", {4, 2}, kF32, 0)
      .tensor_info("output.weight", {32}, kQ4_0, 32)
      .pad_to(32)
      .zeros(32 + 18);
  return file;
}

TEST(GgufMalformedPrefix, SmallValidFileParses) {
  const FileIndex index = read(small_valid_file());
  ASSERT_EQ(index.tensors.size(), 2u);
  EXPECT_EQ(index.metadata.size(), 4u);
  EXPECT_EQ(index.tensors[1].nbytes, 18u);
}

TEST(GgufMalformedPrefix, EveryTruncationThrowsAnError) {
  const GgufBytes file = small_valid_file();
  for (std::size_t length = 0; length < file.size(); ++length) {
    const io::MemoryByteSource source("bad.gguf", file.span().first(length));
    try {
      format::read_gguf(source);
      ADD_FAILURE() << "prefix of " << length << " bytes was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.file(), "bad.gguf") << error.what();
    }
  }
}

TEST(GgufMalformedNesting, SixteenLevelsOfArraysAreAccepted) {
  GgufBytes file;
  file.header(0, 1).str("general.deep").type(GgufType::array);
  for (int level = 0; level < 15; ++level) file.type(GgufType::array).u64(1);
  file.type(GgufType::u8).u64(1).u8(7);
  const FileIndex index = read(file);
  const MetadataValue* value = &index.metadata.at(0).second;
  for (int level = 0; level < 16; ++level) {
    ASSERT_EQ(value->type, MetadataType::array);
    const auto& items = std::get<MetadataArray>(value->value);
    ASSERT_EQ(items.size(), 1u);
    value = &items[0];
  }
  EXPECT_EQ(value->type, MetadataType::u8);
  EXPECT_EQ(std::get<std::uint64_t>(value->value), 7u);
}

}  // namespace
}  // namespace weightmap
