#include "load/read_ahead.hpp"

#include <algorithm>

namespace weightmap::loader {
namespace {

// Pieces of one file closer than this are asked for in one call: the gap (GGUF's padding
// between tensors, a few bytes) is inside the pages the two pieces touch anyway.
constexpr std::uint64_t kMergeGap = 4096;

}  // namespace

ReadAhead::ReadAhead(std::vector<ReadRange> pieces, std::uint64_t window)
    : pieces_(std::move(pieces)), before_(pieces_.size() + 1, 0), window_(window) {
  for (std::size_t i = 0; i < pieces_.size(); ++i) before_[i + 1] = before_[i] + pieces_[i].bytes;
}

std::vector<ReadRange> ReadAhead::advance(std::size_t index) {
  std::vector<ReadRange> out;
  if (index >= pieces_.size() || window_ == 0) return out;
  const std::uint64_t limit = before_[index + 1] + window_;
  std::lock_guard lock(mutex_);
  std::size_t next = std::max(next_, index + 1);
  for (; next < pieces_.size() && before_[next] < limit; ++next) {
    const ReadRange& piece = pieces_[next];
    if (piece.bytes == 0) continue;
    if (!out.empty()) {
      ReadRange& last = out.back();
      if (last.file == piece.file && piece.offset >= last.offset &&
          piece.offset <= last.offset + last.bytes + kMergeGap) {
        last.bytes = std::max(last.bytes, piece.offset + piece.bytes - last.offset);
        continue;
      }
    }
    out.push_back(piece);
  }
  next_ = next;
  return out;
}

}  // namespace weightmap::loader
