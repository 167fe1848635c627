// Page-cache policy for model files: which hints, prefaulting, eviction and locking weightmap
// applies (the operations on a model's pages are in model_page_cache.hpp).
// Every hint is off by default: measured on real boxes, sequential/willneed/populate made
// warm-cache loads slower, so each one is opt-in, through the API or WEIGHTMAP_MMAP_FLAGS.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

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

}  // namespace weightmap
WEIGHTMAP_API_END
