// A run of bytes of a file or a tensor, and the one way a set of them is merged: what page
// hints, prefetch, residency and LoRA undo all work on.
#pragma once

#include <cstdint>
#include <vector>

namespace weightmap::io {

// The bytes [offset, offset + bytes).
struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;

  std::uint64_t end() const noexcept { return offset + bytes; }
  friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

// `ranges` sorted by offset, overlapping or touching ones joined and empty ones dropped.
std::vector<ByteRange> merge_ranges(std::vector<ByteRange> ranges);

}  // namespace weightmap::io
