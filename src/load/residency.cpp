#include "io/mapping_registry.hpp"
#include "load/file_leases.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/model.hpp"

namespace weightmap {

Residency page_cache_residency(const Model& model) {
  std::vector<std::vector<loader::ByteRange>> ranges(model.files().size());
  for (const auto& tensor : model.tensors()) {
    ranges[tensor.file].push_back({tensor.offset, tensor.nbytes});
  }
  Residency out;
  for (std::size_t i = 0; i < model.files().size(); ++i) {
    const ModelFile& file = model.files()[i];
    FileResidency entry;
    entry.path = file.path;
    const auto merged = loader::merge_ranges(std::move(ranges[i]), file.size);
    if (!merged.empty()) {
      // An unpopulated read-only mapping: mincore reports the page cache without filling it.
      const auto mapping = io::map_model_file(file.path, file.identity, Access::read_only);
      for (const auto& range : merged) {
        entry.tensor_bytes += range.bytes;
        entry.resident_bytes += mapping->resident_bytes(range.offset, range.bytes);
      }
    }
    out.tensor_bytes += entry.tensor_bytes;
    out.resident_bytes += entry.resident_bytes;
    out.files.push_back(std::move(entry));
  }
  return out;
}

}  // namespace weightmap
