#include "cli/bench_fill.hpp"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "weightmap/error.hpp"

namespace weightmap::cli {

FilledBuffer fill_fresh_buffer(std::size_t bytes, unsigned threads, bool huge_pages) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  const std::size_t alignment = huge_pages ? kHugePage : alignof(std::max_align_t);
  const std::size_t rounded = std::max<std::size_t>(
      alignment, (bytes + alignment - 1) / alignment * alignment);  // aligned_alloc wants this
  void* memory = std::aligned_alloc(alignment, rounded);
  if (memory == nullptr) {
    throw Error(ErrorCode::io, fmt::format("out of memory allocating {} bytes", rounded));
  }
  if (huge_pages) (void)::madvise(memory, rounded, MADV_HUGEPAGE);
  FilledBuffer buffer(static_cast<std::byte*>(memory), &std::free);

  const unsigned count = std::max(1u, threads);
  const std::size_t share = (bytes + count - 1) / count;
  {
    std::vector<std::jthread> pool;
    for (unsigned i = 0; i < count; ++i) {
      const std::size_t begin = std::min(bytes, share * i);
      const std::size_t end = std::min(bytes, begin + share);
      // Not zero: a write of any value faults the page in; a non-zero one cannot be mistaken
      // for memory the kernel handed over already cleared.
      pool.emplace_back(
          [p = buffer.get(), begin, end] { std::memset(p + begin, 0x5a, end - begin); });
    }
  }  // joined here
  return buffer;
}

std::string transparent_huge_pages_mode() {
  // "always [madvise] never": the bracketed word is the mode in force.
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return "";
  const auto open = line.find('[');
  const auto close = line.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

}  // namespace weightmap::cli
