// Placement and loading: an engine asks for named tensors (the type and shape it wants, the
// device that reads them) and gets storage for each: a view straight into a memory-mapped
// model file whenever that is correct, otherwise a buffer weightmap filled (and converted)
// with bounded threads and memory. The decision is made in one place, plan(); load() carries
// it out. See docs/loading.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/cache_policy.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/file_facts.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/model.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct DeviceCaps {
  bool reads_host_memory = true;  // the device reads host pointers (CPU, unified memory)
  // Alignment of tensor data the device needs: a power of two, or 0 (the default) for each
  // tensor's natural alignment, that of its type's element or block (DTypeInfo::alignment: 4
  // for f32, 2 for f16, bf16 and q8_0, 8 for i64). Natural alignment is what ggml's CPU
  // kernels need of weights (tests/ggml/cpu_weight_alignment_test.cpp), and what tensors in
  // files written by Hugging Face's safetensors writer (8-byte boundaries) have, so such files
  // map. A device that needs more asks for it here; any nonzero value is used as given.
  std::size_t alignment = 0;
};

// The alignment a tensor of `dtype` gets on `device`: device.alignment, or the type's natural
// alignment when that is 0.
std::size_t required_alignment(const DeviceCaps& device, DType dtype);

// Takes a Loaded tensor's bytes piece by piece instead of a buffer (an engine uploading to a
// device): called from a copy worker with consecutive pieces of the tensor as the caller gets
// it (converted), `offset` bytes into it, at most the worker's staging share at a time. Pieces
// of one tensor come in order from one thread; different tensors' sinks run concurrently.
// Throwing weightmap::Error fails the load with that error (the tensor's name added).
using TensorSink = std::function<void(std::span<const std::byte> piece, std::uint64_t offset)>;

struct TensorRequest {
  std::string name;
  std::optional<DType> dtype;                       // nullopt: the file's type
  std::optional<std::vector<std::uint64_t>> shape;  // nullopt: the file's shape
  DeviceCaps device;
  bool writes_in_place = false;  // the caller patches the bytes (LoRA applied in place)
  bool optional = false;         // absent from the files is not an error
  // Where to put the bytes when the tensor is loaded. A destination makes the tensor Loaded
  // (the caller asked for the bytes there), reported as mapping_disabled.
  void* destination = nullptr;
  std::size_t destination_size = 0;
  // Stream the bytes to this sink (see TensorSink) instead: the tensor is Loaded without a
  // buffer and its TensorStorage has no bytes. Staging stays within staging_bytes_cap.
  TensorSink sink;
};

// Why a tensor is Loaded (copied) rather than Mapped.
enum class Reason : std::uint8_t {
  dtype_differs,                   // converted to the requested type
  element_count_differs,           // the requested shape has another element count (an error)
  misaligned_for_device,           // its offset in the file breaks the device's alignment
  device_cannot_read_host_memory,  // the device needs its own copy
  writes_on_read_only_mapping,     // writes in place wanted, copy-on-write mappings refused
  format_cannot_be_mapped,         // stored compressed or strided
  mapping_disabled,                // use_mmap = false, or the request gave a destination/sink
  risky_filesystem,                // auto mode: a network or FUSE filesystem, where mapped
                                   // reads are slow and an I/O error kills with SIGBUS
};
inline constexpr std::size_t kReasonCount = 8;

// "dtype_differs", ...: stable names for logs and JSON.
std::string_view reason_name(Reason reason) noexcept;
// A sentence a user understands.
std::string_view reason_sentence(Reason reason) noexcept;

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
  // The auto mode: weightmap chooses per file and per tensor, and says why in
  // LoadReport::files. Tensors a host-readable device can use are mapped, except on network
  // and FUSE filesystems (read instead); Loaded tensors are read with pread, and from a file
  // mostly not in the page cache each tensor's pages are dropped once read (no second copy
  // left in the cache). use_mmap and direct_io are then ignored. See
  // docs/loading.md#the-auto-mode.
  bool automatic = false;
  bool use_mmap = true;
  // Map files copy-on-write (MAP_PRIVATE) for requests that write in place. Off: those
  // tensors are loaded into private buffers instead (for boxes with strict overcommit, where
  // a writable private mapping is charged its whole size).
  bool allow_copy_on_write = true;
  // Read loaded tensors with O_DIRECT through aligned staging (bypasses the page cache).
  // Falls back on pread, with a note in the report, where the filesystem refuses it.
  bool direct_io = false;
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

enum class Placement {
  mapped,  // a view into the file's mapping
  loaded,  // a buffer filled by the loader
  absent,  // an optional tensor the files lack
};

// The planner's decision for one request.
struct PlannedTensor {
  std::size_t request = 0;  // index into the requests
  std::size_t tensor = 0;   // index into model.tensors() (not for absent)
  Placement placement = Placement::absent;
  std::optional<Reason> reason;  // set when loaded
  std::uint32_t file = 0;        // where the bytes are (not for absent)
  std::uint64_t offset = 0;
  std::uint64_t file_bytes = 0;  // bytes in the file
  DType file_dtype = DType::F32;
  DType dtype = DType::F32;           // what the caller gets
  std::vector<std::uint64_t> shape;   // what the caller gets
  std::uint64_t bytes = 0;            // what the caller gets
  Access access = Access::read_only;  // of the mapping, when mapped
};

struct Plan {
  std::vector<PlannedTensor> tensors;    // one per request, in request order
  std::vector<std::string> unrequested;  // tensors of the files nobody asked for, file order
  std::uint64_t unrequested_bytes = 0;
};

// The one place where Mapped or Loaded is decided. Pure: no I/O, no environment.
// Throws Error(not_found) for a missing tensor that is not optional, Error(unsupported) for a
// type conversion convert.hpp cannot do, Error(invalid_argument) for a bad request
// (alignment not a power of two, destination too small).
// `files` (one per model file, or empty) is used in the auto mode only.
Plan plan(const Model& model, std::span<const TensorRequest> requests,
          const LoadOptions& options = {}, std::span<const FileFacts> files = {});

// Storage for one tensor. Copies share ownership: the mapping (or buffer) lives as long as
// any handle to it.
// The small members sit together: 128 bytes, two cache lines, per tensor.
struct TensorStorage {
  std::string name;
  std::vector<std::uint64_t> shape;
  DType dtype = DType::F32;
  bool mapped = false;
  std::optional<Reason> reason;  // why loaded
  std::span<const std::byte> bytes;
  // Non-empty when writing is allowed: loaded buffers and copy-on-write mappings.
  std::span<std::byte> writable;
  std::shared_ptr<MappedFile> mapping;  // the file's mapping, when mapped
  std::shared_ptr<void> buffer;         // weightmap's buffer, when loaded into one
};

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
  // "auto"; "mmap" (use_mmap), "mmap+direct" (use_mmap and direct_io: what is not mapped is
  // read with O_DIRECT), "read" (neither) or "direct" (direct_io alone)
  std::string mode;
  std::vector<FileChoice> files;   // one per file of the model, in Model::files() order
  CachePolicy cache;               // the policy applied (options + environment)
  std::vector<std::string> notes;  // fallbacks and warnings, in words

  // "memory-mapped N tensors in M files (X MiB), loaded K tensors (Y MiB, Z converted) in T s"
  std::string summary_line() const;
};

struct LoadedModel {
  std::vector<TensorStorage> tensors;  // request order; absent optional tensors left out
  LoadReport report;

  const TensorStorage* find(std::string_view name) const;
  // Drops the handles of every tensor whose name starts with `prefix` (one component);
  // mappings no other handle uses are unmapped (and evicted, with dontneed).
  void release(std::string_view prefix);
};

// Plans, maps and loads. Logs one INFO line (summary_line) and per-reason DEBUG lines through
// options.log. Throws weightmap::Error: everything plan() throws; Error(io) naming file,
// tensor and offset for a read that fails or comes up short (a file truncated under us);
// Error(cancelled) when the progress callback or options.cancel cancels (buffers already
// filled are freed).
LoadedModel load(const Model& model, std::span<const TensorRequest> requests,
                 const LoadOptions& options = {});

// Carries out a plan the caller already made with plan() for the same model, requests and
// options (to allocate device buffers first, say), without planning again. Throws
// Error(invalid_argument) when the plan does not belong to these requests.
LoadedModel load(const Model& model, std::span<const TensorRequest> requests,
                 const LoadOptions& options, Plan planned);

// The facts plan() takes in the auto mode, one per model file (statfs; no file is read).
std::vector<FileFacts> file_facts(const Model& model);

}  // namespace weightmap
WEIGHTMAP_API_END
