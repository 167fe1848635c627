// O_DIRECT reads through an aligned staging buffer: the page cache is bypassed, so loading a
// model does not leave a second copy of it in RAM. O_DIRECT needs the file offset, length
// and buffer address aligned to the device's logical block; we use 4096, which covers the
// common 512- and 4096-byte blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "weightmap/native_file_handle.hpp"

namespace weightmap::io {

class DirectReader {
 public:
  static constexpr std::size_t kBlock = 4096;

  // nullptr with `refusal` set to the system's words when the filesystem refuses O_DIRECT
  // (tmpfs, some FUSE and network filesystems): the caller reads with pread instead.
  // Throws Error(io) when the file cannot be opened at all.
  static std::unique_ptr<DirectReader> open(const std::string& path, std::string* refusal);
  ~DirectReader();
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  // Staging needed to read `n` bytes at any offset: n plus one block of slop each side.
  static constexpr std::size_t staging_for(std::size_t n) noexcept { return n + 2 * kBlock; }

  // Reads [offset, offset+n) using `staging` (kBlock-aligned, at least staging_for(n) bytes)
  // and returns the part of staging that holds those bytes. Throws Error(io) naming the path
  // and offset when the file ends early or the read fails.
  std::span<const std::byte> read(std::uint64_t offset, std::size_t n,
                                  std::span<std::byte> staging) const;

 private:
  DirectReader(std::string path, native_file_handle file) : path_(std::move(path)), file_(file) {}

  std::string path_;
  native_file_handle file_ = invalid_file_handle;
};

}  // namespace weightmap::io
