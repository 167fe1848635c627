// A fast 64-bit checksum over every byte of every tensor, so `weightmap load` provably
// touched all of them (a mapped page is only read from disk when touched) and mmap and copy
// modes can be compared. Not cryptographic, not a file-format hash: only equal inputs in the
// same order give equal values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "weightmap/load.hpp"

namespace weightmap::cli {

class TensorChecksum {
 public:
  // Folds one tensor's bytes in; the order of calls matters.
  void add(std::span<const std::byte> bytes) noexcept;
  // Folds one loaded tensor in. A mapped tensor is read under a fault guard: a file truncated
  // (or failing) under its mapping throws Error(io) naming the file, the tensor and the byte,
  // instead of killing the process with SIGBUS.
  void add(const TensorStorage& tensor);
  std::uint64_t value() const noexcept { return state_; }

 private:
  std::uint64_t state_ = 0x9e3779b97f4a7c15ull;
};

// The per-tensor hash add() folds in: four independent multiply-rotate lanes over 8-byte
// words (so the CPU overlaps them and it runs near memory bandwidth), then the tail bytes.
std::uint64_t hash_bytes(std::span<const std::byte> bytes) noexcept;

}  // namespace weightmap::cli
