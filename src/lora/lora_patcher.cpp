// Immediate LoRAs: patch writable tensors in place, and take patches back out. A mapped
// tensor gets its file bytes back by dropping its copy-on-write pages (no read); pages are
// whole, so the neighbours sharing a boundary page get their remaining patches re-applied
// on the part that was dropped. A loaded tensor is read again through load(). Tensors are
// patched in units (an element, or a row of a quantized tensor: see lora::TensorCodec), so a
// re-patched range is always whole units. A module may patch a slice of a fused tensor's rows
// (q, k or v of a qkv): the kernel touches those rows only, so slices of one tensor compose,
// and re-applying a tensor's remaining patches puts each back on its own rows.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "io/file_reader.hpp"
#include "io/identity_at.hpp"
#include "io/page.hpp"
#include "lora/lora_factors.hpp"
#include "lora/parallel_jobs.hpp"
#include "lora/patch_kernel.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/fault_guard.hpp"
#include "weightmap/load.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

struct Applied {
  LoraId id = 0;
  LoraUse use;
  std::shared_ptr<lora::LoraReaders> readers;
};

// One patch of one applied LoRA on one tensor.
struct PatchRef {
  const Applied* applied = nullptr;
  const LoraTarget* target = nullptr;
};

// What one tensor needs after an undo: its file bytes back (read again when loaded; the
// straddling units at the edges of dropped pages), then the patches that stay.
struct Repair {
  TensorStorage* storage = nullptr;
  const TensorInfo* info = nullptr;
  lora::TensorCodec codec;
  bool reread = false;                       // a loaded tensor: read it from the file again
  std::vector<io::ByteRange> element_spans;  // element ranges to re-patch (in elements)
  std::vector<io::ByteRange> byte_spans;     // the dropped bytes of it, relative to its start
  std::vector<PatchRef> patches;
};

}  // namespace

struct LoraPatcher::State {
  const Model& base;
  LoadedModel& loaded;
  LoraApplyOptions options;
  std::vector<std::unique_ptr<Applied>> applied;
  LoraId next_id = 1;

  std::size_t tile_elements() const {
    return std::max<std::size_t>(options.tile_bytes / (2 * sizeof(float)), 1);
  }

  std::unordered_map<std::string_view, TensorStorage*> storage_by_name() const {
    std::unordered_map<std::string_view, TensorStorage*> out;
    for (auto& storage : loaded.tensors) out.emplace(storage.name, &storage);
    return out;
  }

  const std::string& file_path(const TensorInfo& info) const {
    return base.files()[info.file].path;
  }

  void check_target(const TensorStorage* storage, const TensorInfo* info, const LoraTarget& target,
                    const LoraUse& use) const {
    const std::string name = printable(target.base_tensor);
    const std::string file = info ? file_path(*info) : use.lora->path();
    if (storage == nullptr || info == nullptr) {
      throw Error(ErrorCode::not_found,
                  "the LoRA patches a tensor that is not loaded (request it with "
                  "writes_in_place: see mark_lora_targets)",
                  {file, name});
    }
    lora::check_target_fits(*use.lora, target);
    lora::check_whole_units(codec_of(*storage, *info), target, file);
    if (storage->writable.size() != storage->bytes.size() || storage->writable.empty()) {
      throw Error(ErrorCode::invalid_argument,
                  "the tensor is not writable: request it with writes_in_place (see "
                  "mark_lora_targets) so it is mapped copy-on-write or loaded",
                  {file, name});
    }
    // Rows as well as the count: a slice's rows are only right in the tensor's own rows.
    if (dtype_bytes_for(storage->dtype, target.rows * target.cols) != storage->bytes.size() ||
        (!info->shape.empty() && info->shape[0] != target.rows)) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("the LoRA was matched to a [{}, {}] matrix; the base tensor has "
                              "shape [{}]",
                              target.rows, target.cols, fmt::join(info->shape, ", ")),
                  {file, name});
    }
    if (!storage->mapped && !info->strides.empty()) {
      throw Error(ErrorCode::unsupported,
                  "the tensor is a strided PyTorch view; a LoRA on it could not be undone "
                  "(undo reads loaded tensors from the file again)",
                  {file, name});
    }
  }

  // Checks the type (see lora::tensor_codec) too.
  lora::TensorCodec codec_of(const TensorStorage& storage, const TensorInfo& info) const {
    return lora::tensor_codec(storage.dtype, info.shape, options.quantized.get(), info.name,
                              file_path(info));
  }

  std::vector<PatchRef> patches_of(std::string_view tensor) const {
    std::vector<PatchRef> out;
    for (const auto& entry : applied) {
      for (const auto& target : entry->use.match.targets) {
        if (target.base_tensor == tensor) out.push_back({entry.get(), &target});
      }
    }
    return out;
  }

  // Elements [first, first + count), whole units of `codec`.
  static void add(const std::vector<PatchRef>& refs, TensorStorage& storage,
                  const lora::TensorCodec& codec, std::uint64_t first, std::uint64_t count,
                  std::size_t tile, lora::TileScratch& scratch) {
    std::vector<lora::PreparedPatch> prepared;
    prepared.reserve(refs.size());
    for (const PatchRef& ref : refs) {
      prepared.push_back(lora::prepare_patch(*ref.applied->use.lora, *ref.applied->readers,
                                             *ref.target, ref.applied->use.multiplier));
    }
    std::vector<const lora::PreparedPatch*> pointers;
    for (const auto& patch : prepared) pointers.push_back(&patch);
    const auto bytes = storage.writable.subspan(static_cast<std::size_t>(codec.bytes_of(first)),
                                                static_cast<std::size_t>(codec.bytes_of(count)));
    if (!storage.mapping) {
      lora::add_patches(codec, bytes, first, count, pointers, tile, scratch);
      return;
    }
    // A mapped base whose file shrank (or failed) under the mapping: an Error naming the
    // tensor and byte, not SIGBUS. The scratch is sized first, so nothing is allocated inside
    // the guarded body (a fault abandons it mid-way).
    lora::reserve_scratch(scratch, lora::tile_elements_for(codec, tile), pointers);
    const std::span<const std::byte> range = bytes;
    guarded_read(range,
                 {storage.mapping->path(), printable(storage.name),
                  offset_in_mapping(*storage.mapping, range)},
                 [&] { lora::add_patches(codec, bytes, first, count, pointers, tile, scratch); });
  }

  // Loaded tensors get their file bytes back through load(), into their own buffers (the
  // requests' destinations): read and converted by the loader's workers, as when they were
  // first loaded.
  void reload(const std::vector<Repair>& repairs) const {
    std::vector<TensorRequest> requests;
    for (const Repair& repair : repairs) {
      if (!repair.reread) continue;
      TensorRequest request;
      request.name = repair.info->name;
      request.dtype = repair.storage->dtype;
      request.shape = repair.storage->shape;
      request.destination = repair.storage->writable.data();
      request.destination_size = repair.storage->writable.size();
      requests.push_back(std::move(request));
    }
    if (requests.empty()) return;
    LoadOptions reading;
    reading.workers = std::max(1U, options.workers);
    reading.cache_from_env = false;  // page-cache hints are for loads, not for a repair
    (void)load(base, requests, reading);
  }

  void run_repairs(std::vector<Repair>& repairs) {
    reload(repairs);
    std::unordered_map<std::uint32_t, std::unique_ptr<io::FileReader>> readers;
    for (const Repair& repair : repairs) {
      if (!repair.byte_spans.empty() && !readers.contains(repair.info->file)) {
        readers.emplace(repair.info->file,
                        std::make_unique<io::FileReader>(file_path(*repair.info)));
      }
    }
    const std::size_t tile = tile_elements();
    lora::run_jobs(
        repairs.size(), options.workers, [&](std::size_t index, lora::TileScratch& scratch) {
          Repair& repair = repairs[index];
          TensorStorage& storage = *repair.storage;
          restore_straddling(repair, readers);
          for (const io::ByteRange& span : repair.element_spans) {
            add(repair.patches, storage, repair.codec, span.offset, span.bytes, tile, scratch);
          }
        });
  }

  // A unit cut by the edge of a dropped page is half file, half patched: read it whole from
  // the file before the patches go on again. (Elements are cut only in tensors at offsets
  // that are not a multiple of their element size; rows of quantized tensors often are.)
  static void restore_straddling(
      const Repair& repair,
      const std::unordered_map<std::uint32_t, std::unique_ptr<io::FileReader>>& readers) {
    const std::uint64_t size = repair.codec.unit_bytes;
    if (size == 0) return;
    for (const io::ByteRange& span : repair.byte_spans) {
      for (const std::uint64_t edge : {span.offset, span.end()}) {
        if (edge % size == 0 || edge >= repair.info->nbytes) continue;
        const std::uint64_t start = edge / size * size;
        readers.at(repair.info->file)
            ->read_at(repair.info->offset + start,
                      repair.storage->writable.subspan(static_cast<std::size_t>(start),
                                                       static_cast<std::size_t>(size)));
      }
    }
  }

  // Undo drops copy-on-write pages, so the next read sees the file, and reads loaded tensors
  // from the file again: a base file that changed since it was opened would give other
  // weights, and one that shrank a SIGBUS in the engine's next read. Checked before anything
  // is undone; on a change the patched pages stay as they are.
  void check_files_unchanged(const std::vector<std::string>& affected) const {
    std::set<std::uint32_t> files;
    for (const std::string& name : affected) {
      if (const TensorInfo* info = base.find(name)) files.insert(info->file);
    }
    for (const std::uint32_t index : files) {
      const ModelFile& file = base.files()[index];
      const std::string change = change_since_opened(file);
      if (change.empty()) continue;
      throw Error(ErrorCode::io,
                  fmt::format("the file changed since the model was opened ({}); undo would "
                              "read it again, so the LoRA stays applied",
                              change),
                  {file.path});
    }
  }

  // How the file at `file.path` differs from the one opened, or "" when it does not.
  static std::string change_since_opened(const ModelFile& file) {
    std::optional<FileIdentity> now;
    try {
      now = io::identity_at(file.path);
    } catch (const Error& e) {
      return e.message();
    }
    if (!now) return "it was removed";
    if (now->device != file.identity.device || now->inode != file.identity.inode) {
      return "another file was put in its place";
    }
    if (now->size != file.identity.size) {
      return fmt::format("its size went from {} to {} bytes", file.identity.size, now->size);
    }
    if (now->mtime_ns != file.identity.mtime_ns) return "it was written to";
    return "";
  }

  void undo_ids(std::span<const LoraId> ids) {
    std::unordered_set<LoraId> removing(ids.begin(), ids.end());
    for (const LoraId id : removing) {
      const bool known = std::any_of(applied.begin(), applied.end(),
                                     [&](const auto& entry) { return entry->id == id; });
      if (!known) {
        throw Error(ErrorCode::not_found, fmt::format("LoRA application {} is not applied", id));
      }
    }
    auto storages = storage_by_name();
    // Tensors the removed LoRAs touched.
    std::vector<std::string> affected;
    std::unordered_set<std::string_view> affected_set;
    for (const auto& entry : applied) {
      if (!removing.contains(entry->id)) continue;
      for (const auto& target : entry->use.match.targets) {
        if (affected_set.insert(target.base_tensor).second) affected.push_back(target.base_tensor);
      }
    }
    check_files_unchanged(affected);
    // Keep the removed entries alive until the repairs are done (their names are referenced).
    std::vector<std::unique_ptr<Applied>> removed;
    for (auto& entry : applied) {
      if (removing.contains(entry->id)) removed.push_back(std::move(entry));
    }
    std::erase_if(applied, [](const auto& entry) { return entry == nullptr; });

    // Drop the copy-on-write pages of mapped tensors.
    std::unordered_map<std::uint32_t, std::vector<io::ByteRange>> dropped;  // per base file
    std::vector<Repair> repairs;
    for (const std::string& name : affected) {
      TensorStorage* storage = storages.count(name) ? storages.at(name) : nullptr;
      const TensorInfo* info = base.find(name);
      if (storage == nullptr || info == nullptr) continue;
      Repair repair{storage, info, codec_of(*storage, *info), !storage->mapped,
                    {},      {},   patches_of(name)};
      if (storage->mapped) {
        storage->mapping->discard_private_pages(info->offset, info->nbytes);
        dropped[info->file].push_back({info->offset, info->nbytes});
      }
      if (!repair.patches.empty()) {
        repair.element_spans.push_back({0, info->element_count()});
      }
      repairs.push_back(std::move(repair));
    }
    // Whole pages were dropped.
    for (auto& [file, ranges] : dropped) {
      ranges = io::page_cover(std::move(ranges), base.files()[file].size);
    }

    // Neighbours: mapped tensors that keep patches and lost some of their pages.
    std::unordered_set<std::string_view> seen;
    for (const auto& entry : applied) {
      for (const auto& target : entry->use.match.targets) {
        const std::string_view name = target.base_tensor;
        if (affected_set.contains(name) || !seen.insert(name).second) continue;
        const auto it = storages.find(name);
        const TensorInfo* info = base.find(name);
        if (it == storages.end() || info == nullptr || !it->second->mapped) continue;
        const auto ranges = dropped.find(info->file);
        if (ranges == dropped.end()) continue;
        Repair repair{it->second, info, codec_of(*it->second, *info), false, {}, {}, {}};
        const std::uint64_t size = repair.codec.unit_bytes;
        const std::uint64_t per_unit = repair.codec.unit_elements;
        if (size == 0) continue;
        for (const io::ByteRange& range : ranges->second) {
          const std::uint64_t begin = std::max(range.offset, info->offset);
          const std::uint64_t end = std::min(range.end(), info->offset + info->nbytes);
          if (begin >= end) continue;
          const io::ByteRange bytes{begin - info->offset, end - begin};
          repair.byte_spans.push_back(bytes);
          const std::uint64_t first = bytes.offset / size * per_unit;
          repair.element_spans.push_back(
              {first, (bytes.end() + size - 1) / size * per_unit - first});
        }
        // A unit longer than a page may touch two dropped ranges: patch it once.
        repair.element_spans = io::merge_ranges(std::move(repair.element_spans));
        if (repair.element_spans.empty()) continue;
        repair.patches = patches_of(name);
        repairs.push_back(std::move(repair));
      }
    }
    run_repairs(repairs);
  }
};

LoraPatcher::LoraPatcher(const Model& base, LoadedModel& loaded, LoraApplyOptions options)
    : state_(std::make_unique<State>(State{base, loaded, options, {}, 1})) {}

LoraPatcher::~LoraPatcher() = default;

LoraId LoraPatcher::apply(const LoraUse& use) {
  State& state = *state_;
  if (!use.lora) throw Error(ErrorCode::invalid_argument, "no LoRA file given");
  const auto storages = state.storage_by_name();
  for (const LoraTarget& target : use.match.targets) {
    const auto it = storages.find(target.base_tensor);
    state.check_target(it == storages.end() ? nullptr : it->second,
                       state.base.find(target.base_tensor), target, use);
  }

  auto entry = std::make_unique<Applied>();
  entry->id = state.next_id++;
  entry->use = use;
  entry->readers = std::make_shared<lora::LoraReaders>(*use.lora);
  const Applied& applied = *entry;
  state.applied.push_back(std::move(entry));

  // One job per tensor, its patches in module order (targets of the stored copy of the use,
  // which lives as long as the application).
  std::vector<std::vector<PatchRef>> jobs;
  std::unordered_map<std::string_view, std::size_t> job_of;
  for (const LoraTarget& target : applied.use.match.targets) {
    const auto [it, inserted] = job_of.try_emplace(target.base_tensor, jobs.size());
    if (inserted) jobs.emplace_back();
    jobs[it->second].push_back({&applied, &target});
  }
  const std::size_t tile = state.tile_elements();
  try {
    lora::run_jobs(
        jobs.size(), state.options.workers, [&](std::size_t index, lora::TileScratch& scratch) {
          const auto& refs = jobs[index];
          const LoraTarget& target = *refs.front().target;
          TensorStorage& storage = *storages.at(target.base_tensor);
          const auto codec = state.codec_of(storage, *state.base.find(target.base_tensor));
          // The whole tensor: each patch touches its own rows only.
          State::add(refs, storage, codec, 0, target.rows * target.cols, tile, scratch);
        });
  } catch (...) {
    const LoraId id = applied.id;
    try {
      state.undo_ids(std::span<const LoraId>(&id, 1));
    } catch (...) {  // the first failure is the one worth reporting
    }
    throw;
  }
  return applied.id;
}

void LoraPatcher::undo(std::span<const LoraId> ids) {
  if (!ids.empty()) state_->undo_ids(ids);
}

void LoraPatcher::undo_all() {
  const auto ids = applied();
  undo(ids);
}

std::vector<LoraId> LoraPatcher::applied() const {
  std::vector<LoraId> ids;
  for (const auto& entry : state_->applied) ids.push_back(entry->id);
  return ids;
}

}  // namespace weightmap
