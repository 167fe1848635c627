// The bench's baseline: loading as stable-diffusion.cpp's loader does, so the copy and convert
// rows get a same-run ratio against a peer's strategy. N threads take whole tensors in file
// order (the next index from a shared counter); each read()s a tensor into a staging buffer it
// reuses (grown as needed), then copies or converts it into the tensor's own buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "weightmap/dtype.hpp"

namespace weightmap::cli {

struct BaselineTensor {
  std::uint64_t offset = 0;  // in the file
  std::uint64_t nbytes = 0;  // stored bytes
  DType stored = DType::F32;
  DType wanted = DType::F32;  // convert() runs when it differs from `stored`
  std::uint64_t elements = 0;
};

// One destination buffer per tensor, freed by the caller (so freeing stays out of the timing).
struct BaselineBuffers {
  std::vector<std::unique_ptr<std::byte, void (*)(void*)>> buffers;
};

// Allocates each tensor's destination as the loader does (aligned_alloc at the type's natural
// alignment, fresh per call), then loads `tensors` (sorted by offset) from `path` with
// `threads` threads. Throws Error(io) naming the file and byte when a read fails.
BaselineBuffers baseline_load(const std::string& path, std::span<const BaselineTensor> tensors,
                              unsigned threads);

}  // namespace weightmap::cli
