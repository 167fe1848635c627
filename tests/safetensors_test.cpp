// The safetensors reader on well-formed files, including the corners the format allows.
#include <gtest/gtest.h>

#include <string>

#include "format/readers.hpp"
#include "io/file_reader.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

using testing::Bytes;
using testing::safetensors_file;
using testing::SafetensorsBuilder;

FileIndex read(const Bytes& bytes, const std::string& name = "model.safetensors") {
  const io::MemoryByteSource source(name, bytes);
  return format::read_safetensors(source);
}

std::uint64_t header_size(const Bytes& bytes) {
  std::uint64_t size = 0;
  for (int i = 0; i < 8; ++i) size |= static_cast<std::uint64_t>(bytes[i]) << (8 * i);
  return size;
}

TEST(Safetensors, ReadsTensorsWithAbsoluteOffsets) {
  SafetensorsBuilder builder;
  builder.add("a", "F32", {2, 3}).add("b", "F16", {4}).add("c", "I64", {1});
  const Bytes bytes = builder.bytes();
  const FileIndex index = read(bytes);
  const std::uint64_t data_start = 8 + header_size(bytes);

  EXPECT_EQ(index.format, FileFormat::safetensors);
  EXPECT_EQ(index.data_offset, data_start);
  EXPECT_EQ(index.alignment, 1u);
  EXPECT_TRUE(index.metadata.empty());
  ASSERT_EQ(index.tensors.size(), 3u);

  const TensorInfo& a = index.tensors[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(a.file, 0u);
  EXPECT_EQ(a.offset, data_start);
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(a.element_count(), 6u);

  EXPECT_EQ(index.tensors[1].name, "b");
  EXPECT_EQ(index.tensors[1].dtype, DType::F16);
  EXPECT_EQ(index.tensors[1].offset, data_start + 24);
  EXPECT_EQ(index.tensors[1].nbytes, 8u);
  EXPECT_EQ(index.tensors[2].dtype, DType::I64);
  EXPECT_EQ(index.tensors[2].offset, data_start + 32);
  EXPECT_EQ(index.tensors[2].nbytes, 8u);
  EXPECT_EQ(index.tensors[2].offset + index.tensors[2].nbytes, bytes.size());

  // The builder fills each tensor with its position + 1: the offsets point at those bytes.
  for (std::size_t i = 0; i < index.tensors.size(); ++i) {
    const auto& tensor = index.tensors[i];
    EXPECT_EQ(bytes[tensor.offset], static_cast<std::byte>(i + 1)) << tensor.name;
    EXPECT_EQ(bytes[tensor.offset + tensor.nbytes - 1], static_cast<std::byte>(i + 1));
  }
}

TEST(Safetensors, TensorsComeInDataOrderNotHeaderOrder) {
  const std::string header = R"({"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("a":{"dtype":"U8","shape":[3],"data_offsets":[5,8]},)"
                             R"("m":{"dtype":"U8","shape":[3],"data_offsets":[2,5]}})";
  const FileIndex index = read(safetensors_file(header, 8));
  ASSERT_EQ(index.tensors.size(), 3u);
  EXPECT_EQ(index.tensors[0].name, "z");
  EXPECT_EQ(index.tensors[1].name, "m");
  EXPECT_EQ(index.tensors[2].name, "a");
  EXPECT_EQ(index.tensors[2].offset, 8 + header.size() + 5);
}

TEST(Safetensors, ScalarHasEmptyShapeAndOneElement) {
  const FileIndex index = read(SafetensorsBuilder().add("scale", "F32", {}).bytes());
  ASSERT_EQ(index.tensors.size(), 1u);
  EXPECT_TRUE(index.tensors[0].shape.empty());
  EXPECT_EQ(index.tensors[0].element_count(), 1u);
  EXPECT_EQ(index.tensors[0].nbytes, 4u);
}

TEST(Safetensors, ZeroElementTensorsSitAtSeamsOfTheTiling) {
  // Zero-size tensors at the start, between two tensors and at the very end.
  const std::string header = R"({"empty_start":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("empty_mid":{"dtype":"BF16","shape":[3,0],"data_offsets":[4,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                             R"("empty_end":{"dtype":"I8","shape":[0],"data_offsets":[8,8]}})";
  const FileIndex index = read(safetensors_file(header, 8));
  ASSERT_EQ(index.tensors.size(), 5u);
  const std::vector<std::string> order = {"empty_start", "a", "empty_mid", "b", "empty_end"};
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(index.tensors[i].name, order[i]);
  EXPECT_EQ(index.tensors[0].shape, (std::vector<std::uint64_t>{0, 3}));
  EXPECT_EQ(index.tensors[0].nbytes, 0u);
  EXPECT_EQ(index.tensors[0].element_count(), 0u);
  EXPECT_EQ(index.tensors[4].offset, 8 + header.size() + 8);
}

TEST(Safetensors, EmptyDataAreaWithOnlyZeroSizeTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                             R"("b":{"dtype":"F16","shape":[5,0,2],"data_offsets":[0,0]}})";
  const FileIndex index = read(safetensors_file(header, 0));
  ASSERT_EQ(index.tensors.size(), 2u);
  EXPECT_EQ(index.tensors[0].name, "a");  // ties in offset go by name
  EXPECT_EQ(index.tensors[1].name, "b");
  EXPECT_EQ(index.tensors[1].offset, 8 + header.size());
}

TEST(Safetensors, NoTensorsAtAll) {
  const FileIndex index = read(safetensors_file("{}", 0));
  EXPECT_TRUE(index.tensors.empty());
  EXPECT_EQ(index.data_offset, 10u);
}

TEST(Safetensors, MetadataOnly) {
  const FileIndex index = read(safetensors_file(R"({"__metadata__":{"a":"b"}})", 0));
  EXPECT_TRUE(index.tensors.empty());
  ASSERT_EQ(index.metadata.size(), 1u);
  EXPECT_EQ(index.metadata[0].first, "a");
  EXPECT_EQ(index.metadata[0].second.type, MetadataType::string);
  EXPECT_EQ(std::get<std::string>(index.metadata[0].second.value), "b");
}

TEST(Safetensors, MetadataValuesKeepHeaderOrder) {
  SafetensorsBuilder builder;
  builder.metadata = {{"format", "pt"},
                      {"ss_network_dim", "16"},
                      {"empty", ""},
                      {"quoted", "say \"hi\"\n"},
                      {"alpha", "1.0"}};
  builder.add("w", "F32", {1});
  const FileIndex index = read(builder.bytes());
  ASSERT_EQ(index.metadata.size(), builder.metadata.size());
  for (std::size_t i = 0; i < builder.metadata.size(); ++i) {
    EXPECT_EQ(index.metadata[i].first, builder.metadata[i].first);
    EXPECT_EQ(std::get<std::string>(index.metadata[i].second.value), builder.metadata[i].second);
  }
  ASSERT_EQ(index.tensors.size(), 1u);
}

TEST(Safetensors, UnicodeNames) {
  SafetensorsBuilder builder;
  builder.add("模型.权重", "F16", {2}).add("🙂.bias", "F32", {1}).add("café", "U8", {4});
  const FileIndex index = read(builder.bytes());
  ASSERT_EQ(index.tensors.size(), 3u);
  EXPECT_EQ(index.tensors[0].name, "模型.权重");
  EXPECT_EQ(index.tensors[1].name, "🙂.bias");
  EXPECT_EQ(index.tensors[2].name, "café");
}

TEST(Safetensors, EscapedNamesAndFieldNamesAreUnescaped) {
  const std::string header =
      R"({"caf\u00e9.\"w\"":{"dt\u0079pe":"F32","shap\u0065":[1],"data_offsets":[0,4]}})";
  const FileIndex index = read(safetensors_file(header, 4));
  ASSERT_EQ(index.tensors.size(), 1u);
  EXPECT_EQ(index.tensors[0].name, "café.\"w\"");
}

TEST(Safetensors, FieldsInAnyOrderAndWhitespaceAnywhere) {
  const std::string header =
      " {\n \"w\" : { \"data_offsets\" : [ 0 , 4 ] , \"shape\" : [ ] , \"dtype\" : \"I32\" } } ";
  const FileIndex index = read(safetensors_file(header, 4));
  ASSERT_EQ(index.tensors.size(), 1u);
  EXPECT_EQ(index.tensors[0].dtype, DType::I32);
}

TEST(Safetensors, HeaderPaddedWithSpacesToAMultipleOfEight) {
  SafetensorsBuilder builder;
  builder.add("w", "F32", {3});
  const std::string header = builder.header();
  ASSERT_EQ(header.size() % 8, 0u);
  ASSERT_EQ(header.back(), ' ');
  const Bytes bytes = builder.bytes();
  const FileIndex index = read(bytes);
  EXPECT_EQ(index.data_offset, 8 + header.size());
  EXPECT_EQ(index.data_offset % 8, 0u);
  EXPECT_EQ(index.tensors.at(0).offset, index.data_offset);
}

TEST(Safetensors, EverySafetensorsDtype) {
  SafetensorsBuilder builder;
  std::vector<DType> expected;
  for (const DTypeInfo& info : all_dtypes()) {
    if (info.safetensors_name.empty()) continue;
    // 12 elements fill whole bytes for every type, sub-byte ones included.
    builder.add(std::string("t.") + std::string(info.safetensors_name),
                std::string(info.safetensors_name), {3, 4});
    expected.push_back(info.id);
  }
  ASSERT_EQ(expected.size(), 20u);
  const FileIndex index = read(builder.bytes());
  ASSERT_EQ(index.tensors.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const TensorInfo& tensor = index.tensors[i];
    EXPECT_EQ(tensor.dtype, expected[i]) << tensor.name;
    EXPECT_EQ(tensor.nbytes, *dtype_bytes_for(expected[i], 12)) << tensor.name;
  }
  // Spot checks of the byte sizes the format defines.
  const auto size_of = [&](std::string_view name) {
    for (const auto& tensor : index.tensors) {
      if (tensor.name == name) return tensor.nbytes;
    }
    return std::uint64_t{0};
  };
  EXPECT_EQ(size_of("t.F64"), 96u);
  EXPECT_EQ(size_of("t.BOOL"), 12u);
  EXPECT_EQ(size_of("t.F8_E4M3"), 12u);
  EXPECT_EQ(size_of("t.F6_E2M3"), 9u);
  EXPECT_EQ(size_of("t.F4"), 6u);
  EXPECT_EQ(size_of("t.C64"), 96u);
}

TEST(Safetensors, ManyTensorsKeepFileOrder) {
  SafetensorsBuilder builder;
  for (int i = 0; i < 2000; ++i) {
    builder.add(fmt::format("model.layers.{}.weight", i), i % 2 ? "BF16" : "F32", {2, 2});
  }
  const FileIndex index = read(builder.bytes());
  ASSERT_EQ(index.tensors.size(), 2000u);
  for (std::size_t i = 1; i < index.tensors.size(); ++i) {
    ASSERT_EQ(index.tensors[i].offset, index.tensors[i - 1].offset + index.tensors[i - 1].nbytes);
  }
  EXPECT_EQ(index.tensors[1999].name, "model.layers.1999.weight");
}

// A header bigger than the buffers a thread keeps, then a small one: the reader must not
// keep or reuse anything stale.
TEST(Safetensors, BigHeaderThenSmallHeader) {
  SafetensorsBuilder big;
  big.metadata = {{"blob", std::string(6u << 20, 'x')}};
  big.add("w", "F32", {1});
  const FileIndex big_index = read(big.bytes());
  EXPECT_EQ(std::get<std::string>(big_index.metadata.at(0).second.value).size(), 6u << 20);

  const FileIndex small_index = read(SafetensorsBuilder().add("v", "F16", {2}).bytes());
  ASSERT_EQ(small_index.tensors.size(), 1u);
  EXPECT_EQ(small_index.tensors[0].name, "v");
}

TEST(Safetensors, ReadsAFileOnDiskThroughFileReader) {
  testing::TempDir dir;
  const std::string path = dir / "model.safetensors";
  SafetensorsBuilder builder;
  builder.metadata = {{"format", "pt"}};
  builder.add("x", "F32", {4, 4});
  testing::write_file(path, builder.bytes());

  const io::FileReader reader(path);
  ASSERT_EQ(format::sniff_format(reader), FileFormat::safetensors);
  const FileIndex index = format::read_safetensors(reader);
  ASSERT_EQ(index.tensors.size(), 1u);
  EXPECT_EQ(index.tensors[0].nbytes, 64u);

  const Model model = open_model(path);
  ASSERT_EQ(model.files().size(), 1u);
  EXPECT_EQ(model.files()[0].path, path);
  EXPECT_EQ(model.files()[0].data_offset, index.data_offset);
  ASSERT_NE(model.find("x"), nullptr);
  EXPECT_EQ(model.find("x")->offset, index.tensors[0].offset);
  ASSERT_NE(model.find_metadata("format"), nullptr);
}

}  // namespace
}  // namespace weightmap
