// How load() works: the mode, copy workers and their staging, the page-cache policy, and the
// caller's progress, log and cancel hooks. See docs/loading.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "weightmap/cache_policy.hpp"
#include "weightmap/export.hpp"
#include "weightmap/load_mode.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class LogLevel { debug, info, warning };
using LogCallback = std::function<void(LogLevel level, std::string_view line)>;

struct LoadProgress {
  std::uint64_t bytes_done = 0;  // bytes of loaded tensors read so far
  std::uint64_t bytes_total = 0;
  std::size_t tensors_done = 0;
  std::size_t tensors_total = 0;
};
// Called from a worker thread, one call at a time. Return false to cancel the load.
using ProgressCallback = std::function<bool(const LoadProgress& progress)>;

struct LoadOptions {
  // Map, read, read with O_DIRECT, or let weightmap choose per file and tensor (see LoadMode).
  LoadMode mode = LoadMode::mmap;
  // Map files copy-on-write (MAP_PRIVATE) for requests that write in place. Off: those
  // tensors are loaded into private buffers instead (for boxes with strict overcommit, where
  // a writable private mapping is charged its whole size).
  bool allow_copy_on_write = true;
  // Copy workers. Each one's staging grows to the largest tensor it converts (up to its
  // share of staging_bytes_cap), so more workers multiply peak memory.
  unsigned workers = 2;
  // Bound on all workers' staging together; tensors larger than a worker's share are read
  // and converted in chunks. At least 256 KiB per worker is used (fewer workers run when
  // the cap is smaller than that).
  std::size_t staging_bytes_cap = std::size_t{64} << 20;
  CachePolicy cache;
  bool cache_from_env = true;  // also apply WEIGHTMAP_MMAP_FLAGS
  ProgressCallback progress;
  LogCallback log;
  const std::atomic<bool>* cancel = nullptr;  // set to true from any thread to cancel
};

}  // namespace weightmap
WEIGHTMAP_API_END
