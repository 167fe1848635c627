// The only way format writers see their output: bytes appended front to back. Where they go
// (a temporary file renamed into place, memory in a test) is the io layer's business, so a
// writer never knows about file names on disk, flushing or signals.
#pragma once

#include <cstddef>
#include <span>

namespace weightmap::io {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends `bytes`. Throws Error(io) naming the destination and the offset when it fails.
  virtual void write(std::span<const std::byte> bytes) = 0;
};

}  // namespace weightmap::io
