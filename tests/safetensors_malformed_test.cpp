// Broken safetensors files: each must be refused with weightmap::Error naming the file, the
// problem and, where there is one, the tensor; never a crash, a hang or a huge allocation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "format/readers.hpp"
#include "support/safetensors_bytes.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

using testing::Bytes;
using testing::safetensors_file;

// One valid tensor entry, to pad broken headers with.
std::string tensor(std::string_view name, std::string_view dtype, std::string_view shape,
                   std::uint64_t begin, std::uint64_t end) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})", name, dtype,
                     shape, begin, end);
}

std::string object(const std::vector<std::string>& entries) {
  return fmt::format("{{{}}}", fmt::join(entries, ","));
}

struct BadFile {
  std::string label;
  Bytes bytes;
  ErrorCode code;
  std::vector<std::string> says;  // substrings of what(), after "bad.safetensors: "
};

std::vector<BadFile> bad_files() {
  const std::string w4 = tensor("w", "F32", "1", 0, 4);
  std::vector<BadFile> rows;
  const auto add = [&](std::string label, Bytes bytes, ErrorCode code,
                       std::vector<std::string> says) {
    rows.push_back({std::move(label), std::move(bytes), code, std::move(says)});
  };

  add("shorter than 8 bytes", testing::to_bytes(std::string_view("\x02\x00\x00", 3)), ErrorCode::io,
      {"the file is too short for safetensors: 3 bytes, but the header length alone takes 8 "
       "(byte 0)"});
  add("empty file", {}, ErrorCode::io, {"too short for safetensors: 0 bytes"});
  add("header length beyond the file", safetensors_file(100, "{}"), ErrorCode::io,
      {"the header length 100 runs past the end of the file (10 bytes) (byte 0)"});
  add("header length over 100 MB", safetensors_file(100'000'001, "{}"), ErrorCode::malformed,
      {"the header length 100000001 is over the limit of 100000000 bytes"});
  add("header length 2^64-1", safetensors_file(~std::uint64_t{0}, "{}"), ErrorCode::malformed,
      {"the header length 18446744073709551615 is over the limit"});
  add("empty header", safetensors_file(0, ""), ErrorCode::malformed,
      {"the header is not valid JSON", "(byte 8)"});
  add("header not JSON", safetensors_file("hello world", 0), ErrorCode::malformed,
      {"the header is not a JSON object (byte 8)"});
  add("header braces around no JSON", safetensors_file("{hello}", 0), ErrorCode::malformed,
      {"the header is not valid JSON"});
  add("header a JSON array", safetensors_file("[1, 2]", 0), ErrorCode::malformed,
      {"the header is not a JSON object (byte 8)"});
  add("header a JSON string", safetensors_file(R"("{}")", 0), ErrorCode::malformed,
      {"the header is not a JSON object"});
  add("truncated JSON", safetensors_file(R"({"w":{"dtype":"F32","shape":[1])", 0),
      ErrorCode::malformed, {"the header is not valid JSON"});
  add("missing comma", safetensors_file(R"({"w":{"dtype":"F32" "shape":[1]}})", 0),
      ErrorCode::malformed, {"the header is not valid JSON"});
  add("second JSON value after the object", safetensors_file(object({w4}) + "{}", 4),
      ErrorCode::malformed, {"the header has more text after its JSON object (byte 62)"});
  add("non-UTF-8 tensor name", safetensors_file(object({tensor("w\xff", "F32", "1", 0, 4)}), 4),
      ErrorCode::malformed,
      {"the header is not valid UTF-8 (a name or string holds byte 0xff)", "(byte 11)"});
  add("overlong UTF-8 in a name",
      safetensors_file(object({tensor("w\xc0\xaf", "F32", "1", 0, 4)}), 4), ErrorCode::malformed,
      {"not valid UTF-8", "byte 0xc0"});
  add("lone surrogate escape in a name",
      safetensors_file(object({tensor("\\ud800", "F32", "1", 0, 4)}), 4), ErrorCode::malformed,
      {"a tensor name is not a valid JSON string", "(byte 9)"});
  add("control character in a name",
      safetensors_file(object({tensor("w\x01", "F32", "1", 0, 4)}), 4), ErrorCode::malformed,
      {"a string holds an unescaped control character"});
  add("duplicate tensor name",
      safetensors_file(object({tensor("w", "F32", "1", 0, 4), tensor("w", "F32", "1", 4, 8)}), 8),
      ErrorCode::duplicate, {"the tensor name appears twice in the header (tensor w, byte "});
  add("missing dtype", safetensors_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
      ErrorCode::malformed, {"the tensor has no \"dtype\" (tensor w, byte 9)"});
  add("missing shape", safetensors_file(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4),
      ErrorCode::malformed, {"the tensor has no \"shape\" (tensor w, byte 9)"});
  add("missing data_offsets", safetensors_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4),
      ErrorCode::malformed, {"the tensor has no \"data_offsets\" (tensor w, byte 9)"});
  add("unknown dtype", safetensors_file(object({tensor("w", "F33", "1", 0, 4)}), 4),
      ErrorCode::unknown_dtype, {"unknown dtype \"F33\" (tensor w, byte 9)"});
  add("dtype in lower case", safetensors_file(object({tensor("w", "f32", "1", 0, 4)}), 4),
      ErrorCode::unknown_dtype, {"unknown dtype \"f32\""});
  add("dtype not a string",
      safetensors_file(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4),
      ErrorCode::malformed, {"\"dtype\" is not a string (found 7) (tensor w"});
  add("negative dimension", safetensors_file(object({tensor("w", "F32", "-1", 0, 4)}), 4),
      ErrorCode::malformed,
      {"\"shape\" must list integers from 0 to 2^64-1 (found -1) (tensor w, byte 9)"});
  add("fractional dimension", safetensors_file(object({tensor("w", "F32", "1.5", 0, 4)}), 4),
      ErrorCode::malformed, {"(found 1.5) (tensor w"});
  add("dimension written as a string",
      safetensors_file(object({tensor("w", "F32", "\"1\"", 0, 4)}), 4), ErrorCode::malformed,
      {"\"shape\" must list integers", "(found \"1\")"});
  add("dimension of 2^64",
      safetensors_file(object({tensor("w", "F32", "18446744073709551616", 0, 4)}), 4),
      ErrorCode::malformed, {"(found 18446744073709551616) (tensor w"});
  add("shape not a list",
      safetensors_file(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4),
      ErrorCode::malformed, {"\"shape\" is not a list (found 4) (tensor w"});
  add("65 dimensions",
      safetensors_file(
          object({tensor("w", "F32", fmt::format("{}", fmt::join(std::vector<int>(65, 1), ",")), 0,
                         4)}),
          4),
      ErrorCode::unsupported, {"the shape has more than 64 dimensions (tensor w"});
  add("shape product overflows",
      safetensors_file(object({tensor("w", "F32", "4294967296,4294967296,0", 0, 0)}), 0),
      ErrorCode::malformed,
      {"shape [4294967296, 4294967296, 0] has more elements than fit in 64 bits (tensor w"});
  add("byte size overflows",
      safetensors_file(object({tensor("w", "F64", "4294967296,4294967295", 0, 0)}), 0),
      ErrorCode::malformed, {"elements of F64 take more bytes than fit in 64 bits (tensor w"});
  add("data_offsets reversed", safetensors_file(object({tensor("w", "U8", "0", 4, 0)}), 4),
      ErrorCode::malformed, {"\"data_offsets\" [4, 0] end before they begin (tensor w"});
  add("data_offsets with three values",
      safetensors_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4,8]}})", 4),
      ErrorCode::malformed,
      {"\"data_offsets\" must be [begin, end] with integers from 0 to 2^64-1 (found more than "
       "two values) (tensor w"});
  add("data_offsets with one value",
      safetensors_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[4]}})", 4),
      ErrorCode::malformed, {"(found one value)"});
  add("negative data offset",
      safetensors_file(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 4),
      ErrorCode::malformed, {"(found -4)"});
  add("offsets past the end", safetensors_file(object({tensor("w", "F32", "2", 0, 8)}), 4),
      ErrorCode::malformed,
      {"\"data_offsets\" [0, 8] run past the end of the data area, which holds 4 bytes "
       "(tensor w, byte 9)"});
  add("offsets at 2^64-1",
      safetensors_file(
          object({tensor("w", "U8", "0", 18446744073709551615u, 18446744073709551615u)}), 4),
      ErrorCode::malformed, {"run past the end of the data area"});
  add("overlapping ranges",
      safetensors_file(object({tensor("a", "F32", "2", 0, 8), tensor("b", "F32", "2", 4, 12)}), 12),
      ErrorCode::malformed,
      {"the tensor's bytes overlap tensor \"a\" (data_offsets [0, 8]) (tensor b, byte "});
  add("zero-size tensor inside another",
      safetensors_file(object({tensor("a", "F32", "2", 0, 8), tensor("z", "F32", "0", 4, 4)}), 8),
      ErrorCode::malformed, {"overlap tensor \"a\"", "(tensor z, byte "});
  add("gap between ranges",
      safetensors_file(object({tensor("a", "F32", "1", 0, 4), tensor("b", "F32", "1", 8, 12)}), 12),
      ErrorCode::malformed,
      {"4 bytes between tensor \"a\" and this tensor belong to no tensor (tensor b, byte "});
  add("gap at the start", safetensors_file(object({tensor("w", "F32", "1", 4, 8)}), 8),
      ErrorCode::malformed,
      {"the first 4 bytes of the data area belong to no tensor (the first tensor starts at "
       "data offset 4) (tensor w, byte "});
  add("trailing bytes after the last tensor", safetensors_file(object({w4}), 8),
      ErrorCode::malformed,
      {"the last 4 bytes of the file belong to no tensor (they follow tensor \"w\") (byte "});
  add("data but no tensors", safetensors_file("{}", 3), ErrorCode::malformed,
      {"the 3 bytes after the header belong to no tensor (byte 10)"});
  add("size does not match shape", safetensors_file(object({tensor("w", "F32", "2", 0, 4)}), 4),
      ErrorCode::malformed,
      {"\"data_offsets\" [0, 4] hold 4 bytes, but F32 of shape [2] takes 8 (tensor w, byte "});
  add("__metadata__ with a number",
      safetensors_file(R"({"__metadata__":{"epoch":1},)" + w4 + "}", 4), ErrorCode::malformed,
      {"\"__metadata__\" value of \"epoch\" is not a string (found 1) (byte 25)"});
  add("__metadata__ with a nested object",
      safetensors_file(R"({"__metadata__":{"a":{"b":"c"}}})", 0), ErrorCode::malformed,
      {"\"__metadata__\" value of \"a\" is not a string"});
  add("__metadata__ not an object", safetensors_file(R"({"__metadata__":["a"]})", 0),
      ErrorCode::malformed, {"\"__metadata__\" is not an object of strings"});
  add("__metadata__ twice", safetensors_file(R"({"__metadata__":{},"__metadata__":{}})", 0),
      ErrorCode::duplicate, {"\"__metadata__\" appears twice in the header"});
  add("__metadata__ key twice", safetensors_file(R"({"__metadata__":{"k":"1","k":"2"}})", 0),
      ErrorCode::duplicate, {"\"__metadata__\" key \"k\" appears twice"});
  add("extra field in a tensor",
      safetensors_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"strides":[1]}})",
                       4),
      ErrorCode::malformed,
      {"unknown field \"strides\" in the tensor's entry (expected dtype, shape, data_offsets) "
       "(tensor w, byte 9)"});
  add("field twice in a tensor",
      safetensors_file(R"({"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                       4),
      ErrorCode::malformed, {"a field appears twice in the tensor's entry (tensor w"});
  add("tensor entry not an object", safetensors_file(R"({"w":[0,4]})", 4), ErrorCode::malformed,
      {"the tensor's entry is not a JSON object (tensor w, byte 9)"});
  add("F4 tensor with an odd element count",
      safetensors_file(object({tensor("w", "F4", "3", 0, 2)}), 2), ErrorCode::malformed,
      {"3 elements of F4 do not fill whole bytes (2 elements take 1 bytes) (tensor w, byte 9)"});
  add("F6 tensor with 6 elements", safetensors_file(object({tensor("w", "F6_E3M2", "6", 0, 5)}), 5),
      ErrorCode::malformed, {"6 elements of F6_E3M2 do not fill whole bytes"});
  add("hostile name is escaped in messages",
      safetensors_file(object({tensor("\\u001b[2J", "F33", "1", 0, 4)}), 4),
      ErrorCode::unknown_dtype, {"unknown dtype \"F33\" (tensor \\x1b[2J, byte 9)"});
  return rows;
}

TEST(SafetensorsMalformed, EveryBadFileIsRefusedWithAClearError) {
  const auto rows = bad_files();
  ASSERT_GE(rows.size(), 22u);
  for (const auto& row : rows) {
    SCOPED_TRACE(row.label);
    const io::MemoryByteSource source("bad.safetensors", row.bytes);
    try {
      format::read_safetensors(source);
      ADD_FAILURE() << "accepted";
    } catch (const Error& error) {
      const std::string what = error.what();
      EXPECT_EQ(error.code(), row.code) << what;
      EXPECT_EQ(error.file(), "bad.safetensors");
      EXPECT_EQ(what.rfind("bad.safetensors: ", 0), 0u) << what;
      for (const auto& part : row.says) {
        EXPECT_NE(what.find(part), std::string::npos) << "expected \"" << part << "\" in\n" << what;
      }
    }
  }
}

TEST(SafetensorsMalformed, ExactTextForAnOverlap) {
  const Bytes bytes =
      safetensors_file(object({tensor("a", "F32", "2", 0, 8), tensor("b", "F32", "2", 4, 12)}), 12);
  const io::MemoryByteSource source("bad.safetensors", bytes);
  try {
    format::read_safetensors(source);
    FAIL();
  } catch (const Error& error) {
    // The header is 108 bytes, so the data area starts at 116; b starts 4 bytes in.
    EXPECT_STREQ(error.what(),
                 "bad.safetensors: the tensor's bytes overlap tensor \"a\" (data_offsets [0, 8]) "
                 "(tensor b, byte 120)");
    EXPECT_EQ(error.tensor(), "b");
    EXPECT_EQ(error.offset(), 120u);
  }
}

Bytes small_valid_file() {
  testing::SafetensorsBuilder builder;
  builder.metadata = {{"format", "pt"}};
  builder.add("a", "F16", {2, 2}).add("b", "F32", {}).add("c", "U8", {3});
  return builder.bytes();
}

TEST(SafetensorsMalformed, EveryTruncationIsRefused) {
  const Bytes full = small_valid_file();
  {
    const io::MemoryByteSource source("whole.safetensors", full);
    ASSERT_EQ(format::read_safetensors(source).tensors.size(), 3u);
  }
  for (std::size_t size = 0; size < full.size(); ++size) {
    const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(size));
    const io::MemoryByteSource source("cut.safetensors", cut);
    EXPECT_THROW(format::read_safetensors(source), Error) << size << " bytes";
  }
}

// Every single-byte change of the header either still parses into an index that lies inside
// the file, or throws weightmap::Error; nothing else (sanitizer builds catch the rest).
TEST(SafetensorsMalformed, SingleByteCorruptionsNeverEscapeAsAnythingButError) {
  const Bytes full = small_valid_file();
  std::size_t header_end = 8;
  for (int i = 0; i < 8; ++i) header_end += static_cast<std::size_t>(full[i]) << (8 * i);
  const std::vector<unsigned char> replacements = {0x00, 0xff, '"', '{', '}', '[',  ']', ',',
                                                   ':',  '0',  '9', '-', ' ', '\\', 'e', 0x80};
  for (std::size_t at = 0; at < header_end; ++at) {
    for (const unsigned char value : replacements) {
      Bytes bytes = full;
      bytes[at] = static_cast<std::byte>(value);
      const io::MemoryByteSource source("mutated.safetensors", bytes);
      try {
        const FileIndex index = format::read_safetensors(source);
        for (const auto& t : index.tensors) {
          ASSERT_LE(t.offset + t.nbytes, bytes.size());
          ASSERT_GE(t.offset, index.data_offset);
        }
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace
}  // namespace weightmap
