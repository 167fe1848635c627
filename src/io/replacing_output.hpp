// An output file that appears under its name only when complete: it is written under a
// unique temporary name in the same folder (so the final rename stays on one filesystem and
// is atomic) and renamed over the final path by commit().
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "weightmap/file_identity.hpp"

namespace weightmap::io {

class ReplacingOutput {
 public:
  // Creates an empty temporary file beside `final_path` (mode 0644 less the umask, as a
  // plain create would). Throws Error(io) naming `final_path` when the folder refuses it.
  explicit ReplacingOutput(std::string final_path);
  // Removes the temporary file unless commit() succeeded.
  ~ReplacingOutput();
  ReplacingOutput(const ReplacingOutput&) = delete;
  ReplacingOutput& operator=(const ReplacingOutput&) = delete;

  const std::string& temp_path() const noexcept { return temp_path_; }
  const std::string& final_path() const noexcept { return final_path_; }

  // Flushes the temporary file to disk and renames it to the final path. Throws Error(io).
  void commit();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// The identity of the file at `path` (following symlinks), or nullopt when nothing is there.
// Throws Error(io) when `path` exists but cannot be examined.
std::optional<FileIdentity> identity_at(const std::string& path);

}  // namespace weightmap::io
