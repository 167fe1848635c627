#include "io/byte_source.hpp"

#include <fmt/format.h>

#include <cstring>

#include "weightmap/error.hpp"

namespace weightmap::io {

void MemoryByteSource::read_at(std::uint64_t offset, std::span<std::byte> out) const {
  if (offset > bytes_.size() || out.size() > bytes_.size() - offset) {
    throw Error(ErrorCode::io,
                fmt::format("unexpected end of file: needed {} bytes at byte {}, the file has {}",
                            out.size(), offset, bytes_.size()),
                {name_, {}, offset});
  }
  if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
}

}  // namespace weightmap::io
