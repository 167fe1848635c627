// What is at a path now, to compare with what was opened before: an output must not be an
// input, and undo must not read a file that changed under a LoRA.
#pragma once

#include <optional>
#include <string>

#include "weightmap/file_identity.hpp"

namespace weightmap::io {

// The identity of the file at `path` (following symlinks), or nullopt when nothing is there.
// Throws Error(io) when `path` exists but cannot be examined or is not a regular file.
std::optional<FileIdentity> identity_at(const std::string& path);

}  // namespace weightmap::io
