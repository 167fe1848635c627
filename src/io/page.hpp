// The page size and page rounding: what every mapping, madvise, mincore, mlock and fault
// guard works in. Lower than page_cache and fault_guard, so neither needs the other for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/byte_range.hpp"
#include "weightmap/mapped_file.hpp"

namespace weightmap::io {

// The system's page size (weightmap/mapped_file.hpp; read once). Mapping bases are aligned
// to it.
using weightmap::page_size;

// `at` rounded down / up to a multiple of the page size.
inline std::uint64_t page_floor(std::uint64_t at) noexcept {
  const std::uint64_t page = page_size();
  return at / page * page;
}
inline std::uint64_t page_ceil(std::uint64_t at) noexcept {
  const std::uint64_t page = page_size();
  return (at + page - 1) / page * page;
}

// [addr, addr+len) widened to whole pages.
struct PageSpan {
  std::byte* begin = nullptr;
  std::size_t len = 0;
};
PageSpan whole_pages(const void* addr, std::size_t len) noexcept;

// The whole pages that cover `ranges` (of a file of `file_size` bytes, which may end inside
// its last page), merged: the unit of page hints, prefetch and residency.
std::vector<ByteRange> page_cover(std::vector<ByteRange> ranges, std::uint64_t file_size);

}  // namespace weightmap::io
