// What load() did: tensors and bytes mapped and loaded, why each was loaded, the mode and
// what it chose per file, and fallbacks in words. See
// docs/loading.md#the-report-and-the-log-line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "weightmap/cache_policy.hpp"
#include "weightmap/export.hpp"
#include "weightmap/load_mode.hpp"
#include "weightmap/reason.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// What the loader did with one file, and why (the auto mode's choices, or the fixed mode's).
struct FileChoice {
  std::string path;
  std::string filesystem;  // "ext4", "tmpfs", "nfs", "fuse", ... ("unknown")
  std::size_t mapped_tensors = 0;
  std::size_t loaded_tensors = 0;
  // Share of the Loaded tensors' bytes in the page cache before reading (auto mode only;
  // negative when not measured).
  double resident_fraction = -1;
  // "pread", "pread, dropping pages behind", "O_DIRECT", or empty when nothing was read
  std::string read_with;
  std::string why;  // a sentence
};

struct LoadReport {
  std::size_t mapped_tensors = 0;
  std::uint64_t mapped_bytes = 0;
  std::size_t mapped_files = 0;
  std::size_t loaded_tensors = 0;
  std::uint64_t loaded_bytes = 0;  // bytes the caller got
  std::size_t converted_tensors = 0;
  double seconds = 0;
  std::map<Reason, std::size_t> reasons;  // loaded tensors per reason
  std::vector<std::string> unrequested;   // tensors nobody asked for
  std::uint64_t unrequested_bytes = 0;
  std::vector<std::string> missing_optional;  // optional requests the files lack
  unsigned workers = 0;                       // copy workers that ran
  std::uint64_t peak_staging_bytes = 0;
  LoadMode mode = LoadMode::mmap;  // the options' (load_mode_name: "auto", "mmap", ...)
  std::vector<FileChoice> files;   // one per file of the model, in Model::files() order
  CachePolicy cache;               // the policy applied (options + environment)
  std::vector<std::string> notes;  // fallbacks and warnings, in words

  // "memory-mapped N tensors in M files (X MiB), loaded K tensors (Y MiB, Z converted) in T s"
  std::string summary_line() const;
};

}  // namespace weightmap
WEIGHTMAP_API_END
