#include "io/page.hpp"

#include <algorithm>

namespace weightmap::io {

PageSpan whole_pages(const void* addr, std::size_t len) noexcept {
  const auto start = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(addr));
  const std::uint64_t begin = page_floor(start);
  const std::uint64_t end = page_ceil(start + len);
  return {reinterpret_cast<std::byte*>(static_cast<std::uintptr_t>(begin)),
          static_cast<std::size_t>(end - begin)};
}

std::vector<ByteRange> page_cover(std::vector<ByteRange> ranges, std::uint64_t file_size) {
  for (ByteRange& range : ranges) {
    const std::uint64_t begin = page_floor(range.offset);
    const std::uint64_t end = std::min(file_size, page_ceil(range.end()));
    range = {begin, end > begin ? end - begin : 0};
  }
  return merge_ranges(std::move(ranges));
}

}  // namespace weightmap::io
