// Page-cache policy for model files: hints, prefaulting, eviction, locking, residency.
// Every hint is off by default: measured on real boxes, sequential/willneed/populate made
// warm-cache loads slower, so each one is opt-in, through the API or WEIGHTMAP_MMAP_FLAGS.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

class Model;

// The environment variable a user sets to tune an engine they did not write:
// a comma list of sequential, willneed, populate, dontneed, hugepage, random, mlock.
inline constexpr std::string_view kMmapFlagsVariable = "WEIGHTMAP_MMAP_FLAGS";

struct CachePolicy {
  bool sequential = false;  // MADV_SEQUENTIAL on mappings, POSIX_FADV_SEQUENTIAL on reads
  bool random = false;      // MADV_RANDOM / POSIX_FADV_RANDOM
  bool willneed = false;    // MADV_WILLNEED / POSIX_FADV_WILLNEED: start reading ahead now
  // Prefault mapped tensors for reading (MADV_POPULATE_READ, or touching each page). Never
  // MAP_POPULATE: on a copy-on-write mapping that copies the whole file into private memory.
  bool populate = false;
  // "dontneed": when the last handle to a file's tensors goes, drop its pages from the page
  // cache (POSIX_FADV_DONTNEED; MADV_DONTNEED alone only unmaps). Read ranges of loaded
  // tensors are dropped as soon as they are copied. Helps a small box load several models
  // in turn; hurts back-to-back runs, which must read from disk again.
  bool dontneed_on_release = false;
  // MADV_HUGEPAGE on mappings, and on the buffers weightmap allocates for loaded tensors of
  // 2 MiB and more (fewer page faults filling them; a fault may stall to compact memory).
  bool hugepage = false;
  bool mlock = false;  // lock mapped tensors in RAM (needs RLIMIT_MEMLOCK or CAP_IPC_LOCK)

  // Every flag set in either policy.
  CachePolicy& merge(const CachePolicy& other);
  // Every flag set in `other` turned off (what was asked minus what was refused).
  CachePolicy& remove(const CachePolicy& other);
  // The flags that are on, in the variable's spelling ("populate,dontneed"); "" when none.
  std::string to_string() const;

  // Parses the comma list. Words are trimmed and empty words skipped; an unknown word is
  // ignored with a warning naming it, appended to `warnings` when given.
  static CachePolicy parse(std::string_view flags, std::vector<std::string>* warnings = nullptr);
  // parse() of WEIGHTMAP_MMAP_FLAGS; all off when it is unset.
  static CachePolicy from_env(std::vector<std::string>* warnings = nullptr);

  friend bool operator==(const CachePolicy&, const CachePolicy&) = default;
};

// How much of a model's tensor bytes sit in the page cache now (mincore over the pages of each
// file's tensors, through a read-only mapping that is not populated). A tensor counts the
// bytes it holds of each resident page, so a page two tensors share counts once in all, and
// tensors add up to their files.
struct FileResidency {
  std::string path;
  std::uint64_t tensor_bytes = 0;    // the file's tensor bytes
  std::uint64_t resident_bytes = 0;  // of those, bytes on pages in the page cache
};

struct Residency {
  std::vector<FileResidency> files;  // in Model::files() order
  std::uint64_t tensor_bytes = 0;
  std::uint64_t resident_bytes = 0;
  std::vector<std::uint64_t> tensor_resident_bytes;  // per tensor, in Model::tensors() order
};

// Throws Error(io) when a file cannot be mapped or changed since the model was opened.
Residency page_cache_residency(const Model& model);

// Called with the bytes done so far and the total.
using PageCacheProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Reads the pages of every tensor of `model` into the page cache, through read-only shared
// mappings (no private memory), so that a later load or mapped read finds them there. Reads
// are guarded: a page that cannot be read (a file truncated or failing under the mapping)
// throws Error(io) naming the file, the tensor and the byte, never SIGBUS. Throws Error(io)
// too when a file changed since the model was opened.
void prefetch_into_page_cache(const Model& model, const PageCacheProgress& progress = {});

// Drops the files of `model` from the page cache, after writing their dirty pages back (the
// kernel drops clean pages only). Pages another process has mapped stay. Throws Error(io)
// when a file changed since the model was opened.
void evict_from_page_cache(const Model& model);

}  // namespace weightmap
WEIGHTMAP_API_END
