// The one way weightmap writes an output file: under a temporary name beside the final one
// (so the rename stays on one filesystem and is atomic), flushed to disk, and renamed over
// the final path only by commit(). Until then an existing output is untouched; a failed
// write, an exception or SIGINT/SIGTERM (see live_temp_files.hpp) removes the temporary
// file, and a later run removes the ones a killed process left behind.
//
// The temporary file is `.NAME.partial-PID-XXXXXXXX` in the output's folder, created by the
// first write(), and locked (flock) while this object owns it. Creating one first removes
// every `.NAME.partial-*` of the same output whose process is gone and whose lock is free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "io/byte_sink.hpp"
#include "io/identity_at.hpp"
#include "weightmap/file_identity.hpp"
#include "weightmap/native_file_handle.hpp"

namespace weightmap::io {

class ReplacingOutput final : public ByteSink {
 public:
  // Throws Error(io) when `final_path` names something that is not a regular file (a folder,
  // a device). Nothing is created here. Callers refuse an output that is one of their inputs
  // first (format/output_over_inputs.hpp).
  explicit ReplacingOutput(std::string final_path);
  // Removes the temporary file unless commit() succeeded.
  ~ReplacingOutput() override;
  ReplacingOutput(const ReplacingOutput&) = delete;
  ReplacingOutput& operator=(const ReplacingOutput&) = delete;

  const std::string& final_path() const noexcept { return final_path_; }
  // Empty until the first write().
  const std::string& temp_path() const noexcept { return temp_path_; }

  // Appends to the temporary file (created on the first call). Throws Error(io) naming the
  // final path and the offset.
  void write(std::span<const std::byte> bytes) override;

  // Flushes the temporary file to disk, closes it and renames it to the final path (an empty
  // file when nothing was written). Throws Error(io).
  void commit();

 private:
  void create();

  std::string final_path_;
  std::string temp_path_;
  native_file_handle file_ = invalid_file_handle;
  int signal_slot_ = -1;
  std::uint64_t written_ = 0;
  bool committed_ = false;
};

// The index of the first of `files` that is the file at `path` (the same device and inode,
// through symlinks and hard links), or nullopt, also when nothing is at `path`.
std::optional<std::size_t> find_same_file(const std::string& path,
                                          std::span<const FileIdentity> files);

}  // namespace weightmap::io
