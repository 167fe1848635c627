#include <algorithm>

#include "io/mapping_registry.hpp"
#include "io/page_cache.hpp"
#include "load/file_leases.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/model.hpp"

namespace weightmap {

Residency page_cache_residency(const Model& model) {
  std::vector<std::vector<io::ByteRange>> ranges(model.files().size());
  for (const auto& tensor : model.tensors()) {
    ranges[tensor.file].push_back({tensor.offset, tensor.nbytes});
  }
  Residency out;
  for (std::size_t i = 0; i < model.files().size(); ++i) {
    const ModelFile& file = model.files()[i];
    FileResidency entry;
    entry.path = file.path;
    const auto merged = io::page_cover(std::move(ranges[i]), file.size);
    if (!merged.empty()) {
      // An unpopulated read-only mapping: mincore reports the page cache without filling it.
      const auto mapping = io::map_model_file(file.path, file.identity, Access::read_only);
      const std::uint64_t page = io::page_size();
      for (const auto& range : merged) {
        // Ranges are whole pages but for the file's last, which the file ends inside: count
        // only the bytes of it the file holds, in resident_bytes as in tensor_bytes.
        entry.tensor_bytes += range.bytes;
        const auto bytes = mapping->span(range.offset, range.bytes);
        const auto pages = io::resident_pages(bytes.data(), bytes.size(), file.path);
        for (std::size_t p = 0; p < pages.size(); ++p) {
          if (pages[p]) entry.resident_bytes += std::min(page, range.bytes - p * page);
        }
      }
    }
    out.tensor_bytes += entry.tensor_bytes;
    out.resident_bytes += entry.resident_bytes;
    out.files.push_back(std::move(entry));
  }
  return out;
}

}  // namespace weightmap
