// Fills the buffers of Loaded tensors: a bounded pool of workers pulls pieces of tensors from
// one queue (file order, so reads run forward; a tensor larger than a worker's staging share
// is cut into pieces of that size, so every worker has work even when one tensor is most of
// the bytes), asks the pieces a window ahead into the page cache (read_ahead.hpp), reads with
// pread (never through a mapping, so a file that shrinks gives an Error, not SIGBUS) and
// converts through a per-worker staging buffer, faulting in each piece of a fresh buffer in
// one call before writing it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/direct_reader.hpp"
#include "io/file_reader.hpp"
#include "weightmap/load.hpp"

namespace weightmap::loader {

struct CopyJob {
  std::string_view name;
  std::uint32_t file = 0;
  std::uint64_t offset = 0;
  std::uint64_t file_bytes = 0;
  DType from = DType::F32;
  DType to = DType::F32;
  std::uint64_t elements = 0;
  std::span<std::byte> destination;
  // Element strides of a tensor stored strided (PyTorch views); empty when contiguous. Its
  // whole reach is staged at once, whatever the cap: such tensors are rare and small.
  std::span<const std::uint64_t> shape;
  std::span<const std::uint64_t> strides;
  // Set: the bytes go to the caller's sink in pieces through staging; destination is empty.
  const TensorSink* sink = nullptr;
  // The destination is a buffer the loader just allocated, not the caller's: its pages are
  // not faulted in yet, and nothing reads it before the copy has filled it, so a worker may
  // fault its pages in ahead of the copy (writing them, where the kernel cannot populate).
  bool fresh_destination = false;
};

// The open files a run reads from, indexed like Model::files().
struct CopySource {
  const io::FileReader* reader = nullptr;    // pread path
  const io::DirectReader* direct = nullptr;  // set when direct I/O is on and allowed
  bool drop_behind = false;  // POSIX_FADV_DONTNEED each tensor's range of this file once copied
};

struct CopySettings {
  unsigned workers = 2;
  std::size_t staging_bytes_cap = std::size_t{64} << 20;
  const ProgressCallback* progress = nullptr;
  const std::atomic<bool>* cancel = nullptr;
};

struct CopyStats {
  unsigned workers = 0;
  std::uint64_t peak_staging_bytes = 0;
};

// Smallest staging a worker gets, whatever the cap: a few direct-I/O blocks.
inline constexpr std::size_t kMinStagingPerWorker = std::size_t{256} << 10;

// Runs every job. Throws the first Error (with the tensor's name added), or Error(cancelled);
// destinations are then partly filled and the caller frees them.
CopyStats run_copy_jobs(std::span<const CopyJob> jobs, std::span<const CopySource> sources,
                        const CopySettings& settings);

}  // namespace weightmap::loader
