// One mapping per file. Read-only mappings are shared process-wide through a registry of
// weak pointers keyed by file identity: two loads (or two engines' components) reading the
// same file share one mapping, and the registry never keeps a mapping alive, so it dies with
// the last handle to its tensors. Copy-on-write mappings are never shared: one load's
// in-place patches must not show up in another's tensors.
#pragma once

#include <memory>
#include <string>

#include "weightmap/file_identity.hpp"
#include "weightmap/mapped_file.hpp"

namespace weightmap::io {

// Throws Error(io) naming `path` when `now` is not `expected` (the file was replaced, resized
// or written to since the model was opened: its validated offsets cannot be trusted).
void check_unchanged(const FileIdentity& now, const FileIdentity& expected,
                     const std::string& path);

// Maps `path` with `access`, or returns the live read-only mapping of the same file when
// `access` is read_only and one exists. Throws Error(io) when the file cannot be mapped or is
// no longer the file `expected` describes.
std::shared_ptr<MappedFile> map_model_file(const std::string& path, const FileIdentity& expected,
                                           Access access);

}  // namespace weightmap::io
