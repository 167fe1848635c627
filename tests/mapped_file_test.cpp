#include "weightmap/mapped_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;

class MappedFileTest : public ::testing::Test {
 protected:
  std::string write_file(const std::string& name, const std::string& bytes) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  static std::string pattern(std::size_t n) {
    std::string bytes(n, '\0');
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>('a' + i % 26);
    return bytes;
  }

  testing::TempDir dir_;
};

std::string as_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST_F(MappedFileTest, ReadOnlyMappingShowsTheFileBytes) {
  const auto path = write_file("a.bin", pattern(10000));
  const auto file = MappedFile::open(path, Access::read_only);
  EXPECT_EQ(file->size(), 10000u);
  EXPECT_EQ(file->access(), Access::read_only);
  EXPECT_EQ(as_string(file->span(26, 5)), "abcde");
  EXPECT_EQ(file->span(10000, 0).size(), 0u);
}

TEST_F(MappedFileTest, EmptyFileIsAClearErrorNotEinval) {
  const auto path = write_file("empty.safetensors", "");
  try {
    MappedFile::open(path, Access::read_only);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_EQ(std::string(e.what()), path + ": the file is empty; an empty file cannot be mapped");
  }
}

TEST_F(MappedFileTest, MissingFileNamesThePathAndReason) {
  const auto path = dir_ / "nope.gguf";
  try {
    MappedFile::open(path, Access::read_only);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": cannot open: No such file or directory");
  }
}

TEST_F(MappedFileTest, DirectoryIsNotARegularFile) {
  try {
    MappedFile::open(dir_.path().string(), Access::read_only);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir_.path().string() + ": not a regular file (directory)");
  }
}

TEST_F(MappedFileTest, SpansAreBoundsChecked) {
  const auto file = MappedFile::open(write_file("a.bin", pattern(100)), Access::read_only);
  EXPECT_THROW(file->span(90, 11), Error);
  EXPECT_THROW(file->span(101, 0), Error);
  EXPECT_THROW(file->span(1, UINT64_MAX), Error);  // offset + n overflows
  try {
    file->span(50, 60);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("range of 60 bytes at byte 50 is outside the mapped "
                                         "file of 100 bytes"),
              std::string::npos);
  }
}

TEST_F(MappedFileTest, ReadOnlyMappingRefusesWritableSpans) {
  const auto file = MappedFile::open(write_file("a.bin", pattern(100)), Access::read_only);
  EXPECT_THROW(file->writable_span(0, 1), Error);
}

TEST_F(MappedFileTest, CopyOnWriteWritesNeverReachTheFile) {
  const auto path = write_file("a.bin", pattern(3 * 4096));
  const auto file = MappedFile::open(path, Access::copy_on_write);
  auto bytes = file->writable_span(4096, 4);
  std::memcpy(bytes.data(), "ZZZZ", 4);
  EXPECT_EQ(as_string(file->span(4096, 4)), "ZZZZ");

  std::ifstream in(path, std::ios::binary);
  std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, pattern(3 * 4096));

  // A second mapping of the same file sees the file, not the private copy.
  const auto other = MappedFile::open(path, Access::read_only);
  EXPECT_EQ(as_string(other->span(4096, 4)), pattern(3 * 4096).substr(4096, 4));
}

TEST_F(MappedFileTest, DiscardingPrivatePagesBringsBackTheFileBytes) {
  const std::string original = pattern(3 * 4096 + 100);
  const auto file = MappedFile::open(write_file("a.bin", original), Access::copy_on_write);
  auto all = file->writable_span(0, file->size());
  std::memset(all.data(), 'x', all.size());
  // Drop a range in the middle page: the whole page comes back, the others stay patched.
  file->discard_private_pages(4096 + 10, 20);
  EXPECT_EQ(as_string(file->span(4096, 4096)), original.substr(4096, 4096));
  EXPECT_EQ(as_string(file->span(0, 4096)), std::string(4096, 'x'));
  EXPECT_EQ(as_string(file->span(2 * 4096, 4096)), std::string(4096, 'x'));
  // The partial last page.
  file->discard_private_pages(3 * 4096, 100);
  EXPECT_EQ(as_string(file->span(3 * 4096, 100)), original.substr(3 * 4096));
}

TEST_F(MappedFileTest, IdentityTellsThatTheFileChanged) {
  const auto path = write_file("a.bin", pattern(100));
  const auto file = MappedFile::open(path, Access::read_only);
  EXPECT_EQ(file->identity().size, 100u);
  EXPECT_NE(file->identity().inode, 0u);
  EXPECT_FALSE(file->changed_on_disk());
  // Replace the file (new inode), as a download tool would.
  const auto replacement = write_file("b.bin", pattern(100));
  fs::rename(replacement, path);
  EXPECT_TRUE(file->changed_on_disk());
}

TEST_F(MappedFileTest, MappingOutlivesTheDescriptorAndTheName) {
  const auto path = write_file("a.bin", pattern(5000));
  const auto file = MappedFile::open(path, Access::read_only);
  fs::remove(path);
  EXPECT_EQ(as_string(file->span(0, 3)), "abc");
  EXPECT_TRUE(file->changed_on_disk());
}

TEST_F(MappedFileTest, MappingsStartOnAPageBoundaryOfPageSize) {
  const std::size_t page = page_size();
  EXPECT_GE(page, 4096u);
  EXPECT_EQ(page & (page - 1), 0u) << page << " is not a power of two";
  const auto file = MappedFile::open(write_file("a.bin", pattern(100)), Access::read_only);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(file->span(0, 1).data()) % page, 0u);
}

TEST_F(MappedFileTest, ChangedOnDiskWhenAFolderTakesTheFilesName) {
  const auto path = write_file("a.bin", pattern(100));
  const auto file = MappedFile::open(path, Access::read_only);
  fs::remove(path);
  fs::create_directory(path);
  EXPECT_TRUE(file->changed_on_disk());
}

}  // namespace
}  // namespace weightmap
