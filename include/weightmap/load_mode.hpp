// How load() gets the bytes of the tensors it does not map: the load mode, one of four.
// See docs/loading.md.
#pragma once

#include <optional>
#include <string_view>

#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class LoadMode {
  // weightmap chooses per file and per tensor, and says why in LoadReport::files. Tensors a
  // host-readable device can use are mapped, except on network and FUSE filesystems (read
  // instead, Reason::risky_filesystem); Loaded tensors are read with pread, and from a file
  // mostly not in the page cache each tensor's pages are dropped once read (no second copy
  // left in the cache). See docs/loading.md#the-auto-mode.
  automatic,
  // Every tensor that can be mapped is (see Reason for those that cannot); the others are read
  // with pread.
  mmap,
  // Nothing is mapped (Reason::mapping_disabled): every tensor is read with pread.
  read,
  // Nothing is mapped (Reason::mapping_disabled): every tensor is read with O_DIRECT through
  // aligned staging, bypassing the page cache. Where the filesystem refuses O_DIRECT (tmpfs,
  // some FUSE and network filesystems) the loader reads with pread and says so in
  // LoadReport::notes.
  direct,
};

// Every mode, in the enum's order (for listing them: a command line's choices, say).
inline constexpr LoadMode kLoadModes[] = {LoadMode::automatic, LoadMode::mmap, LoadMode::read,
                                          LoadMode::direct};

// "auto", "mmap", "read", "direct": LoadReport::mode in logs and JSON, `weightmap load --mode`,
// the C API's report. "" for a value that is no LoadMode.
std::string_view load_mode_name(LoadMode mode) noexcept;
// The mode of that name; nullopt for any other string.
std::optional<LoadMode> load_mode_named(std::string_view name) noexcept;

}  // namespace weightmap
WEIGHTMAP_API_END
