#include "format/gguf_cursor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <span>

#include "weightmap/error.hpp"

namespace weightmap::format {

GgufCursor::GgufCursor(const io::ByteSource& source)
    : source_(source),
      file_size_(source.size()),
      // A small file gets a small window: tests and fuzzers open thousands of tiny files.
      window_size_(static_cast<std::size_t>(std::min<std::uint64_t>(kWindowBytes, file_size_))) {
  window_.reset(new std::byte[window_size_]);
}

void GgufCursor::refill(std::size_t need, std::string_view what) {
  if (need > remaining()) {
    throw Error(ErrorCode::io,
                fmt::format("the file ends inside the {}: {} bytes needed, {} left", what, need,
                            remaining()),
                {file(), {}, offset()});
  }
  // need <= remaining <= file size, and the window holds min(1 MiB, file size) >= need.
  const std::size_t kept = end_ - pos_;
  std::memmove(window_.get(), window_.get() + pos_, kept);
  window_offset_ += pos_;
  pos_ = 0;
  end_ = kept;
  const std::uint64_t file_left = file_size_ - (window_offset_ + kept);
  const auto fill =
      static_cast<std::size_t>(std::min<std::uint64_t>(window_size_ - kept, file_left));
  source_.read_at(window_offset_ + kept, std::span(window_.get() + kept, fill));
  end_ += fill;
}

std::string GgufCursor::read_long_string(std::uint64_t length, std::uint64_t length_offset,
                                         std::string_view what) {
  if (length > remaining()) {
    throw Error(ErrorCode::malformed,
                fmt::format("{} length {} runs past the end of the file ({} bytes left)", what,
                            length, remaining()),
                {file(), {}, length_offset});
  }
  // The string is longer than what the window holds: take the buffered part, read the rest
  // straight into the string, and start the window again after it.
  std::string text(static_cast<std::size_t>(length), '\0');
  const std::size_t buffered = end_ - pos_;
  std::memcpy(text.data(), window_.get() + pos_, buffered);
  const std::uint64_t rest_offset = offset() + buffered;
  source_.read_at(rest_offset, std::as_writable_bytes(
                                   std::span(text.data() + buffered, text.size() - buffered)));
  window_offset_ = offset() + length;
  pos_ = 0;
  end_ = 0;
  return text;
}

}  // namespace weightmap::format
