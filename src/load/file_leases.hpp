// The mapped side of a load: one lease per mapped file, shared by the handles of that file's
// tensors. When the last handle goes, the lease applies the release policy (munlock, evict
// with dontneed) and drops its reference to the mapping, which then unmaps unless another
// load still uses it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/byte_range.hpp"
#include "weightmap/load.hpp"

namespace weightmap::loader {

class FileLease {
 public:
  explicit FileLease(std::shared_ptr<MappedFile> file, bool evict_on_release)
      : file_(std::move(file)), evict_on_release_(evict_on_release) {}
  ~FileLease();
  FileLease(const FileLease&) = delete;
  FileLease& operator=(const FileLease&) = delete;

  MappedFile& file() const noexcept { return *file_; }
  // Applies the policy's hints, prefaulting and locking to the ranges of the load's mapped
  // tensors. Refused hints and a failed mlock are notes (the load goes on) and come back as
  // the flags refused; a failed populate is an Error (the file shrank under the mapping).
  CachePolicy apply(const CachePolicy& policy, const std::vector<io::ByteRange>& ranges,
                    std::vector<std::string>& notes);

 private:
  std::shared_ptr<MappedFile> file_;
  bool evict_on_release_ = false;
  std::vector<io::ByteRange> locked_;
};

// Whether FileLease::apply does anything with `policy`: hints, populate or mlock on the
// tensors' ranges. Without them a load need not collect the ranges at all.
bool acts_on_ranges(const CachePolicy& policy) noexcept;

// A handle to the mapping that keeps the lease (not only the mapping) alive.
std::shared_ptr<MappedFile> mapping_handle(const std::shared_ptr<FileLease>& lease);

}  // namespace weightmap::loader
