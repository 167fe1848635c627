// A whole model's tensors and the page cache: how much is in it (per tensor and per file),
// reading all of it in, and dropping all of it. What `weightmap cache` shows and does, and
// what an engine may do before or after a load.
#include "weightmap/model_page_cache.hpp"

#include <algorithm>

#include "io/byte_range.hpp"
#include "io/file_reader.hpp"
#include "io/mapping_registry.hpp"
#include "io/page.hpp"
#include "io/page_cache.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/error.hpp"
#include "weightmap/model.hpp"

namespace weightmap {
namespace {

// Prefetch reads this much per populate call, so progress moves and a fault is found near
// where it happened.
constexpr std::uint64_t kPrefetchChunk = std::uint64_t{16} << 20;

// Per file, the whole pages its tensors lie on, merged.
std::vector<std::vector<io::ByteRange>> tensor_pages(const Model& model) {
  std::vector<std::vector<io::ByteRange>> ranges(model.files().size());
  for (const TensorInfo& tensor : model.tensors()) {
    if (tensor.nbytes > 0) ranges[tensor.file].push_back({tensor.offset, tensor.nbytes});
  }
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    ranges[i] = io::page_cover(std::move(ranges[i]), model.files()[i].size);
  }
  return ranges;
}

// Which pages of the file are in the page cache, one entry per page of the file; pages no
// tensor lies on are not asked about (false).
std::vector<bool> resident_file_pages(const ModelFile& file,
                                      const std::vector<io::ByteRange>& pages) {
  std::vector<bool> resident(static_cast<std::size_t>(io::page_ceil(file.size) / io::page_size()));
  if (pages.empty()) return resident;
  // An unpopulated read-only mapping: mincore reports the page cache without filling it.
  const auto mapping = io::map_model_file(file.path, file.identity, Access::read_only);
  for (const io::ByteRange& range : pages) {
    const auto bytes = mapping->span(range.offset, range.bytes);
    const std::vector<bool> state = io::resident_pages(bytes.data(), bytes.size(), file.path);
    const std::size_t first = static_cast<std::size_t>(range.offset / io::page_size());
    for (std::size_t p = 0; p < state.size() && first + p < resident.size(); ++p) {
      resident[first + p] = state[p];
    }
  }
  return resident;
}

// Tensor bytes on resident pages: for each page of the tensor, the bytes of it the tensor holds.
std::uint64_t resident_tensor_bytes(const TensorInfo& tensor, const std::vector<bool>& pages) {
  const std::uint64_t page = io::page_size();
  const std::uint64_t end = tensor.offset + tensor.nbytes;
  std::uint64_t resident = 0;
  for (std::uint64_t p = tensor.offset / page; p * page < end && p < pages.size(); ++p) {
    if (!pages[p]) continue;
    resident += std::min(end, (p + 1) * page) - std::max(tensor.offset, p * page);
  }
  return resident;
}

// The tensor of file `file` that holds byte `offset` (for naming a prefetch fault).
const TensorInfo* tensor_at(const Model& model, std::uint32_t file, std::uint64_t offset) {
  const TensorInfo* nearest = nullptr;
  for (const TensorInfo& tensor : model.tensors()) {
    if (tensor.file != file || tensor.nbytes == 0) continue;
    if (offset >= tensor.offset && offset - tensor.offset < tensor.nbytes) return &tensor;
    // A populate fault is reported at a page start, which may precede the tensor's first
    // byte: the next tensor after it is the one that lost its bytes.
    if (tensor.offset > offset && (nearest == nullptr || tensor.offset < nearest->offset)) {
      nearest = &tensor;
    }
  }
  return nearest;
}

}  // namespace

Residency page_cache_residency(const Model& model) {
  const auto pages = tensor_pages(model);
  Residency out;
  std::vector<std::vector<bool>> resident(model.files().size());
  for (std::size_t i = 0; i < model.files().size(); ++i) {
    resident[i] = resident_file_pages(model.files()[i], pages[i]);
    out.files.push_back({model.files()[i].path, 0, 0});
  }
  out.tensor_resident_bytes.reserve(model.tensors().size());
  for (const TensorInfo& tensor : model.tensors()) {
    const std::uint64_t bytes = resident_tensor_bytes(tensor, resident[tensor.file]);
    out.tensor_resident_bytes.push_back(bytes);
    FileResidency& file = out.files[tensor.file];
    file.tensor_bytes += tensor.nbytes;
    file.resident_bytes += bytes;
    out.tensor_bytes += tensor.nbytes;
    out.resident_bytes += bytes;
  }
  return out;
}

void prefetch_into_page_cache(const Model& model, const PageCacheProgress& progress) {
  const auto pages = tensor_pages(model);
  std::uint64_t total = 0;
  for (const auto& file_pages : pages) {
    for (const io::ByteRange& range : file_pages) total += range.bytes;
  }
  std::uint64_t done = 0;
  if (progress) progress(done, total);
  for (std::uint32_t file = 0; file < pages.size(); ++file) {
    if (pages[file].empty()) continue;
    const ModelFile& model_file = model.files()[file];
    // Read-only and shared: populating it fills the page cache and nothing else.
    const auto mapping =
        io::map_model_file(model_file.path, model_file.identity, Access::read_only);
    for (const io::ByteRange& range : pages[file]) {
      for (std::uint64_t at = range.offset; at < range.end();) {
        const std::uint64_t n = std::min(kPrefetchChunk, range.end() - at);
        try {
          mapping->populate_read(at, n);
        } catch (Error& e) {
          if (const TensorInfo* tensor = tensor_at(model, file, e.offset().value_or(at))) {
            e.add_context({{}, printable(tensor->name), {}});
          }
          throw;
        }
        at += n;
        done += n;
        if (progress) progress(done, total);
      }
    }
  }
}

void evict_from_page_cache(const Model& model) {
  for (const ModelFile& file : model.files()) {
    const io::FileReader reader(file.path);
    io::check_unchanged(reader.identity(), file.identity, file.path);
    reader.write_back_and_drop();
  }
}

}  // namespace weightmap
