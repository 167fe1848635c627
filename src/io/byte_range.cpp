#include "io/byte_range.hpp"

#include <algorithm>

namespace weightmap::io {

std::vector<ByteRange> merge_ranges(std::vector<ByteRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> merged;
  for (const ByteRange& range : ranges) {
    if (range.bytes == 0) continue;
    if (!merged.empty() && range.offset <= merged.back().end()) {
      merged.back().bytes = std::max(merged.back().end(), range.end()) - merged.back().offset;
    } else {
      merged.push_back(range);
    }
  }
  return merged;
}

}  // namespace weightmap::io
