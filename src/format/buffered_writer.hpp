// A writer's one buffer in front of a ByteSink. Bytes are collected in a buffer of a fixed
// size and handed to the sink when it fills, so many small tensors cost few writes and a
// large one streams through without ever being whole in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/byte_sink.hpp"

namespace weightmap::format {

class BufferedWriter {
 public:
  // `name` (the output's path) is for messages. Throws Error(invalid_argument) for an empty
  // buffer.
  BufferedWriter(io::ByteSink& sink, const std::string& name, std::size_t buffer_bytes);
  BufferedWriter(const BufferedWriter&) = delete;
  BufferedWriter& operator=(const BufferedWriter&) = delete;

  std::uint64_t offset() const noexcept { return written_ + used_; }

  void append(std::span<const std::byte> bytes);
  void append_zeros(std::uint64_t count);
  // Appends `count` bytes produced by `fill(offset_in_stream, out)` straight into the
  // buffer, in pieces no larger than the buffer.
  void append_generated(std::uint64_t count,
                        const std::function<void(std::uint64_t, std::span<std::byte>)>& fill);

  // Hands what is buffered to the sink.
  void finish() { flush(); }

 private:
  void flush();

  io::ByteSink& sink_;
  std::vector<std::byte> buffer_;
  std::size_t used_ = 0;
  std::uint64_t written_ = 0;
};

}  // namespace weightmap::format
