// Which bytes the copy workers ask into the page cache ahead of their reads
// (POSIX_FADV_WILLNEED), on top of the kernel's own readahead: on a cold cache the disk then
// has more to do while the workers copy or convert. Pure bookkeeping, no I/O: the workers
// issue the hints. It only ever names bytes some piece of the run reads, so a load that
// drops its pages behind (the auto mode, cold) leaves nothing else in the cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace weightmap::loader {

struct ReadRange {
  std::uint32_t file = 0;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;  // 0: a piece nobody reads ahead of (O_DIRECT, strided)
};

class ReadAhead {
 public:
  // `pieces`: the bytes each piece of the queue reads, in queue order (a file's pieces
  // together, in rising offsets). `window`: how many bytes of queue past a taken piece are
  // asked for.
  ReadAhead(std::vector<ReadRange> pieces, std::uint64_t window);

  // When the piece at `index` is taken: the ranges of the following pieces that start
  // within `window` bytes of queue after its end and were not named before, merged where
  // they touch within a file. Over a run, every byte of every piece (but the first) is
  // named at most once. Thread-safe.
  std::vector<ReadRange> advance(std::size_t index);

 private:
  std::vector<ReadRange> pieces_;
  std::vector<std::uint64_t> before_;  // before_[i]: bytes of the pieces ahead of piece i
  std::uint64_t window_;
  std::mutex mutex_;      // guards next_
  std::size_t next_ = 0;  // the first piece not named yet
};

}  // namespace weightmap::loader
