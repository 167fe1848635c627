#include "format/buffered_writer.hpp"

#include <algorithm>
#include <cstring>

#include "weightmap/error.hpp"

namespace weightmap::format {

BufferedWriter::BufferedWriter(io::ByteSink& sink, const std::string& name,
                               std::size_t buffer_bytes)
    : sink_(sink) {
  if (buffer_bytes == 0) {
    throw Error(ErrorCode::invalid_argument, "the write buffer size must be at least 1 byte",
                {name});
  }
  buffer_.resize(buffer_bytes);
}

void BufferedWriter::flush() {
  if (used_ == 0) return;
  sink_.write(std::span<const std::byte>(buffer_.data(), used_));
  written_ += used_;
  used_ = 0;
}

void BufferedWriter::append(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    if (used_ == buffer_.size()) flush();
    const std::size_t n = std::min(bytes.size(), buffer_.size() - used_);
    std::memcpy(buffer_.data() + used_, bytes.data(), n);
    used_ += n;
    bytes = bytes.subspan(n);
  }
}

void BufferedWriter::append_zeros(std::uint64_t count) {
  while (count > 0) {
    if (used_ == buffer_.size()) flush();
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(count, buffer_.size() - used_));
    std::memset(buffer_.data() + used_, 0, n);
    used_ += n;
    count -= n;
  }
}

void BufferedWriter::append_generated(
    std::uint64_t count, const std::function<void(std::uint64_t, std::span<std::byte>)>& fill) {
  std::uint64_t done = 0;
  while (done < count) {
    if (used_ == buffer_.size()) flush();
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(count - done, buffer_.size() - used_));
    fill(done, std::span<std::byte>(buffer_.data() + used_, n));
    used_ += n;
    done += n;
  }
}

}  // namespace weightmap::format
