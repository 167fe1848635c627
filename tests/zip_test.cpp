// The zip directory reader: entry data offsets resolved exactly through local headers
// (PyTorch pads the local extra field so data starts on 64 bytes; others do not pad), zip64
// end records and extra fields, comments after the end record.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "format/zip_reader.hpp"
#include "io/byte_source.hpp"
#include "support/pytorch_bytes.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

format::ZipDirectory read(const std::string& bytes) {
  const io::MemoryByteSource source("test.zip", std::as_bytes(std::span(bytes)));
  return format::read_zip_directory(source);
}

std::string error_of(const std::string& bytes) {
  try {
    read(bytes);
    return "no error";
  } catch (const Error& error) {
    return error.what();
  }
}

void expect_entries_at_their_data(bool zip64, std::size_t align) {
  test::ZipBytes zip;
  zip.add("archive/data.pkl", "pickle bytes").add("archive/data/0", test::float_bytes(6));
  zip.add("archive/version", "3\n").add("archive/empty", "");
  const std::string archive = zip.finish(zip64, align);
  const auto directory = read(archive);
  EXPECT_EQ(directory.zip64, zip64);
  ASSERT_EQ(directory.entries.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& entry = directory.entries[i];
    const auto& written = zip.entries()[i];
    SCOPED_TRACE(entry.name);
    EXPECT_EQ(entry.name, written.name);
    EXPECT_TRUE(entry.stored());
    EXPECT_EQ(entry.size, written.data.size());
    EXPECT_EQ(entry.local_header_offset, written.local_header_offset);
    EXPECT_EQ(entry.data_offset % align, 0u);
    EXPECT_EQ(archive.substr(entry.data_offset, entry.size), written.data);
  }
}

TEST(ZipReader, StoredEntriesResolveToTheirExactDataOffsets) {
  expect_entries_at_their_data(false, 64);
}

TEST(ZipReader, Zip64EndRecordsAndExtraFieldsAreRead) { expect_entries_at_their_data(true, 64); }

TEST(ZipReader, UnpaddedEntriesStartRightAfterTheirLocalHeader) {
  expect_entries_at_their_data(false, 1);
}

TEST(ZipReader, CommentAfterTheEndRecordIsSkipped) {
  test::ZipBytes zip;
  zip.add("a", "hello");
  std::string archive = zip.finish();
  const std::string comment = "PK\x05\x06 a comment that looks like an end record";
  const auto length = static_cast<std::uint16_t>(comment.size());
  std::memcpy(archive.data() + archive.size() - 2, &length, 2);
  archive += comment;
  const auto directory = read(archive);
  ASSERT_EQ(directory.entries.size(), 1u);
  EXPECT_EQ(archive.substr(directory.entries[0].data_offset, 5), "hello");
}

TEST(ZipReader, CompressedEntriesAreListedWithTheirMethod) {
  test::ZipBytes zip;
  zip.add("a", "xxxx", 8);
  const auto directory = read(zip.finish());
  ASSERT_EQ(directory.entries.size(), 1u);
  EXPECT_FALSE(directory.entries[0].stored());
  EXPECT_EQ(directory.entries[0].method, 8);
}

TEST(ZipReader, EncryptedEntryIsUnsupported) {
  test::ZipBytes zip;
  zip.add("a", "xxxx");
  std::string archive = zip.finish(false, 1);
  const std::size_t cd = archive.size() - 22 - 46 - 1;
  archive[cd + 8] = 1;  // general purpose flag bit 0
  EXPECT_EQ(error_of(archive), "test.zip: zip entry \"a\" is encrypted (byte 43)");
}

TEST(ZipReader, Zip64WithoutLocatorIsAnError) {
  test::ZipBytes zip;
  zip.add("a", "xxxx");
  std::string archive = zip.finish(false, 1);
  const std::uint32_t saturated = 0xFFFFFFFF;
  std::memcpy(archive.data() + archive.size() - 22 + 16, &saturated, 4);
  EXPECT_EQ(error_of(archive),
            "test.zip: the end record asks for zip64 but no zip64 locator precedes it (byte 62)");
}

TEST(ZipReader, Zip64EntryWithoutItsExtraFieldIsAnError) {
  test::ZipBytes zip;
  zip.add("a", "xxxx");
  std::string archive = zip.finish(false, 1);
  const std::size_t cd = archive.size() - 22 - 46 - 1;
  const std::uint32_t saturated = 0xFFFFFFFF;
  std::memcpy(archive.data() + cd + 42, &saturated, 4);
  EXPECT_EQ(error_of(archive),
            "test.zip: zip entry \"a\" needs a zip64 extra field but has none (byte 35)");
}

}  // namespace
}  // namespace weightmap
