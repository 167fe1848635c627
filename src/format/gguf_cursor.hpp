// A forward-only reader over a ByteSource for the GGUF header. The header of a real model is
// a few hundred thousand small fields (150k vocabulary strings, 10k tensor infos); reading
// each through a virtual pread would dominate time-to-ready, so the cursor pulls the file in
// through a window and serves fields from it with inline bounds checks.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "io/byte_source.hpp"
#include "platform.hpp"

namespace weightmap::format {

// GGUF is little-endian and fields are copied out with memcpy: platform.hpp holds the host
// to little-endian too, so no byte swapping is needed.
class GgufCursor {
 public:
  // 256 KiB: a 10,000-tensor header parsed 20% faster than with 1 MiB (fewer fresh pages to
  // fault in) and a 256k-token vocabulary as fast; 64 KiB was no faster on the first and
  // interacted badly with malloc's trimming on repeated opens of the second.
  static constexpr std::size_t kWindowBytes = std::size_t{1} << 18;

  explicit GgufCursor(const io::ByteSource& source);

  const std::string& file() const noexcept { return source_.name(); }
  // Absolute file offset of the next byte to read.
  std::uint64_t offset() const noexcept { return window_offset_ + pos_; }
  std::uint64_t file_size() const noexcept { return file_size_; }
  std::uint64_t remaining() const noexcept { return file_size_ - offset(); }

  // A little-endian scalar. `what` names the field in the error when the file ends first.
  template <typename T>
  T read(std::string_view what) {
    static_assert(std::is_arithmetic_v<T>);
    if (end_ - pos_ < sizeof(T)) refill(sizeof(T), what);
    T value;
    std::memcpy(&value, window_.get() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  // A GGUF string: u64 length, then that many bytes. The length is checked against the rest
  // of the file before anything is allocated.
  std::string read_string(std::string_view what) {
    const std::uint64_t length_offset = offset();
    const auto length = read<std::uint64_t>(what);
    if (length <= end_ - pos_) {
      std::string text(reinterpret_cast<const char*>(window_.get() + pos_),
                       static_cast<std::size_t>(length));
      pos_ += static_cast<std::size_t>(length);
      return text;
    }
    return read_long_string(length, length_offset, what);
  }

 private:
  // Makes at least `need` bytes available at pos_, or throws naming `what`.
  void refill(std::size_t need, std::string_view what);
  std::string read_long_string(std::uint64_t length, std::uint64_t length_offset,
                               std::string_view what);

  const io::ByteSource& source_;
  std::uint64_t file_size_;
  // Not zero-filled: only the pages pread writes to are ever touched.
  std::unique_ptr<std::byte[]> window_;
  std::size_t window_size_;
  std::uint64_t window_offset_ = 0;  // file offset of window_[0]
  std::size_t pos_ = 0;              // next byte to read in window_
  std::size_t end_ = 0;              // bytes of window_ that hold file data
};

}  // namespace weightmap::format
