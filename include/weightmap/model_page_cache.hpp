// A model's pages in the page cache: how much of each file and tensor is resident, reading
// the tensors in ahead of use, and dropping them again. The policy weightmap applies while it
// loads (hints, eviction on release) is in cache_policy.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/model.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// How much of a model's tensor bytes sit in the page cache now (mincore over the pages of each
// file's tensors, through a read-only mapping that is not populated). A tensor counts the
// bytes it holds of each resident page, so a page two tensors share counts once in all, and
// tensors add up to their files.
struct FileResidency {
  std::string path;
  std::uint64_t tensor_bytes = 0;    // the file's tensor bytes
  std::uint64_t resident_bytes = 0;  // of those, bytes on pages in the page cache
};

struct Residency {
  std::vector<FileResidency> files;  // in Model::files() order
  std::uint64_t tensor_bytes = 0;
  std::uint64_t resident_bytes = 0;
  std::vector<std::uint64_t> tensor_resident_bytes;  // per tensor, in Model::tensors() order
};

// Throws Error(io) when a file cannot be mapped or changed since the model was opened.
Residency page_cache_residency(const Model& model);

// Called with the bytes done so far and the total.
using PageCacheProgress = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Reads the pages of every tensor of `model` into the page cache, through read-only shared
// mappings (no private memory), so that a later load or mapped read finds them there. Reads
// are guarded: a page that cannot be read (a file truncated or failing under the mapping)
// throws Error(io) naming the file, the tensor and the byte, never SIGBUS. Throws Error(io)
// too when a file changed since the model was opened.
void prefetch_into_page_cache(const Model& model, const PageCacheProgress& progress = {});

// Drops the files of `model` from the page cache, after writing their dirty pages back (the
// kernel drops clean pages only). Pages another process has mapped stay. Throws Error(io)
// when a file changed since the model was opened.
void evict_from_page_cache(const Model& model);

}  // namespace weightmap
WEIGHTMAP_API_END
