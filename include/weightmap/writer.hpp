// Streaming writers for safetensors and GGUF files. The caller describes the tensors and the
// metadata; the writer lays out the header and asks for each tensor's bytes in chunks, so a
// model of any size is written with one bounded buffer (never the whole model in memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/metadata.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// One tensor to write, in the order it goes into the file.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::uint64_t> shape;  // outermost first (the GGUF writer reverses it)
};

// Fills `out` with bytes [offset, offset + out.size()) of tensor `tensor_index`. The writer
// asks for every tensor in order, each from offset 0 to its end, in pieces no larger than
// the chunk size; `out` points into the writer's buffer and is valid during the call only.
// It may throw; the writer then removes its temporary file and lets the exception through.
using TensorBytesSource =
    std::function<void(std::size_t tensor_index, std::uint64_t offset, std::span<std::byte> out)>;

inline constexpr std::size_t kDefaultWriteChunkBytes = std::size_t{8} << 20;

struct SafetensorsWriteOptions {
  // The `__metadata__` object, in this order; omitted from the header when empty.
  std::vector<std::pair<std::string, std::string>> metadata;
  // The header is padded with spaces so the data area starts at a multiple of this (a power
  // of two from 8 to 1 MiB). safetensors allows no gaps between tensors, so only the start of
  // the data area can be aligned; each tensor then sits at the data start plus the sizes of
  // the tensors before it.
  std::uint32_t data_alignment = 8;
  std::size_t chunk_bytes = kDefaultWriteChunkBytes;  // size of the write buffer
  // Store the tensors as Hugging Face's safetensors writer does: by element size, largest
  // first, then by name (with data_alignment 8, its layout: tensors on 8-byte boundaries,
  // rarely on 32). Off: in the order given. Either way the source is asked by the index in
  // `tensors` and WrittenFile::tensor_offsets follow that order.
  bool hugging_face_order = false;
};

struct GgufWriteOptions {
  // Key/value metadata, in this order. A `general.alignment` entry here must be a u32 power
  // of two; it sets the alignment unless `alignment` is given, in which case both must agree.
  std::vector<std::pair<std::string, MetadataValue>> metadata;
  // Alignment of every tensor's data (a power of two up to 1 MiB). Without it: the metadata's
  // `general.alignment`, or GGUF's default 32. When it is not 32 and the metadata lacks
  // `general.alignment`, the writer appends that key, since readers assume 32 without it.
  std::optional<std::uint32_t> alignment;
  std::size_t chunk_bytes = kDefaultWriteChunkBytes;
};

// Where things landed in the written file.
struct WrittenFile {
  std::uint64_t size = 0;                     // bytes in the file
  std::uint64_t data_offset = 0;              // start of the tensor data area
  std::vector<std::uint64_t> tensor_offsets;  // absolute offset of each tensor, input order
};

// Write `path`. Before anything is written the inputs are validated: names non-empty, valid
// UTF-8 and unique; dtypes the format can hold; shapes a whole number of blocks (for GGUF, of
// every row) without overflow. The bytes go to a temporary file beside `path`
// (`.NAME.partial-PID-XXXXXXXX`), flushed to disk and renamed over `path` only when complete:
// an existing file at `path` is untouched until then and survives any failure. SIGINT and
// SIGTERM during the write remove the temporary file (the first write installs a handler
// for them that chains to the previous one; not when the signal is ignored), and a later
// write of the same path removes temporaries of processes that are gone. `path` must be new
// or a regular file (a symlink there is replaced, not followed). Throws weightmap::Error
// (invalid_argument for bad inputs, io for the file system) naming the path and tensor.
WrittenFile write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const TensorBytesSource& source,
                              const SafetensorsWriteOptions& options = {});

// GGUF version 3: dimensions stored innermost first, tensor offsets aligned, padding zeroed
// (after the last tensor too, as ggml sizes the data section in padded tensors).
WrittenFile write_gguf(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const TensorBytesSource& source, const GgufWriteOptions& options = {});

// Throws Error(invalid_argument) "the output is the input file X itself; ..." naming `output`
// when it is the same file as one of `inputs` (device and inode, through symlinks and hard
// links). Nothing at `output`, and inputs that are not there or not regular files, are fine.
// realign() and write_merged_model() check this themselves before writing anything; a tool
// calls it to refuse such a command line before any work.
void refuse_output_over_inputs(const std::string& output, std::span<const std::string> inputs);

}  // namespace weightmap
WEIGHTMAP_API_END
