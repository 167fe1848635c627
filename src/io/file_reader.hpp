// A file opened for pread: the ByteSource behind every format reader.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "io/byte_source.hpp"
#include "weightmap/file_identity.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/native_file_handle.hpp"

namespace weightmap::io {

class FileReader final : public ByteSource {
 public:
  // Throws Error(io) naming the path and the system's reason, or "not a regular file (FIFO)"
  // (or socket, character device, block device, directory). Never blocks on a FIFO.
  explicit FileReader(std::string path);
  // Adopts `file` (from open_for_reading), closing it also when it throws.
  FileReader(std::string path, native_file_handle file);
  ~FileReader() override;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& name() const override { return path_; }
  std::uint64_t size() const override { return identity_.size; }
  void read_at(std::uint64_t offset, std::span<std::byte> out) const override;
  const FileIdentity& identity() const noexcept { return identity_; }

  // Page-cache advice on [offset, offset + bytes) of the file: the copy path's hints
  // (io/page_cache.hpp, advise_file). Throws Error(io) naming the file when it is refused.
  void advise(std::uint64_t offset, std::uint64_t bytes, Advice advice) const;
  // Writes the file's dirty pages back and drops all of its pages from the page cache
  // (io/page_cache.hpp, write_back_and_drop).
  void write_back_and_drop() const;

 private:
  std::string path_;
  native_file_handle file_ = invalid_file_handle;
  FileIdentity identity_;
};

// A reader of `path`, or nullptr when `path` is a directory: one open decides which, so
// nothing can swap the path between a check and the open. Throws as FileReader does.
std::unique_ptr<FileReader> open_unless_directory(const std::string& path);

// The identity of an open file. Throws Error(io), also for anything but a regular file:
// "not a regular file (FIFO)".
FileIdentity identity_of(native_file_handle file, const std::string& path);

// Opens `path` for reading (plus `flags`) without blocking: returns at once on a FIFO or a
// device, so that adopt_regular_file can refuse it. Throws Error(io) "cannot open: " + the
// system's reason (ELOOP, EACCES, ENOTDIR, ...).
native_file_handle open_for_reading(const std::string& path, int flags = 0);

// For a handle from open_for_reading: its identity (identity_of, refusing anything but a
// regular file), reads made blocking again. Closes `file` when it throws.
FileIdentity adopt_regular_file(native_file_handle file, const std::string& path);

// "FIFO", "socket", "character device", "block device", "directory", ... for st_mode.
std::string_view file_kind_name(unsigned mode) noexcept;

}  // namespace weightmap::io
