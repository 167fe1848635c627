#include "load/file_leases.hpp"

#include <fmt/format.h>

#include "weightmap/error.hpp"

namespace weightmap::loader {

FileLease::~FileLease() {
  for (const auto& range : locked_) file_->unlock(range.offset, range.bytes);
  // Evict only when no other load shares the mapping: its pages are still in use there.
  if (evict_on_release_ && file_.use_count() == 1) file_->evict();
}

CachePolicy FileLease::apply(const CachePolicy& policy, const std::vector<io::ByteRange>& ranges,
                             std::vector<std::string>& notes) {
  CachePolicy refused;
  const auto hint = [&](bool CachePolicy::*flag, Advice advice, std::string_view word) {
    if (!(policy.*flag)) return;
    try {
      for (const auto& range : ranges) file_->advise(advice, range.offset, range.bytes);
    } catch (const Error& e) {
      notes.push_back(fmt::format("{} hint refused: {}", word, e.what()));
      refused.*flag = true;
    }
  };
  hint(&CachePolicy::sequential, Advice::sequential, "sequential");
  hint(&CachePolicy::random, Advice::random, "random");
  hint(&CachePolicy::willneed, Advice::willneed, "willneed");
  hint(&CachePolicy::hugepage, Advice::hugepage, "hugepage");
  if (policy.populate) {
    for (const auto& range : ranges) file_->populate_read(range.offset, range.bytes);
  }
  if (policy.mlock) {
    try {
      for (const auto& range : ranges) {
        file_->lock(range.offset, range.bytes);
        locked_.push_back(range);
      }
    } catch (const Error& e) {
      notes.push_back(fmt::format("tensors not locked in memory: {}", e.what()));
      refused.mlock = true;
    }
  }
  return refused;
}

bool acts_on_ranges(const CachePolicy& policy) noexcept {
  // The flags apply() reads, and no others.
  return policy.sequential || policy.random || policy.willneed || policy.hugepage ||
         policy.populate || policy.mlock;
}

std::shared_ptr<MappedFile> mapping_handle(const std::shared_ptr<FileLease>& lease) {
  return std::shared_ptr<MappedFile>(lease, &lease->file());
}

}  // namespace weightmap::loader
