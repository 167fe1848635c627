// A file written front to back through one buffer: the writers' only contact with the file
// system. Bytes are collected in a buffer of a fixed size and written with plain write()s
// when it fills, so many small tensors cost few system calls and a large one streams
// through without ever being whole in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace weightmap::io {

class FileWriter {
 public:
  // Creates or truncates `path`. Throws Error(io) naming the path and the system's reason.
  FileWriter(std::string path, std::size_t buffer_bytes);
  // Removes the file unless finish() succeeded: a half-written model must not look whole.
  ~FileWriter();
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::uint64_t offset() const noexcept { return written_ + used_; }

  void append(std::span<const std::byte> bytes);
  void append_zeros(std::uint64_t count);
  // Appends `count` bytes produced by `fill(offset_in_stream, out)` straight into the
  // buffer, in pieces no larger than the buffer.
  void append_generated(std::uint64_t count,
                        const std::function<void(std::uint64_t, std::span<std::byte>)>& fill);

  // Writes what is buffered and closes the file. Throws Error(io).
  void finish();

 private:
  void flush();

  std::string path_;
  int fd_ = -1;
  bool finished_ = false;
  std::vector<std::byte> buffer_;
  std::size_t used_ = 0;
  std::uint64_t written_ = 0;
};

}  // namespace weightmap::io
