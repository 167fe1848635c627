// bind(): checks the engine's tensors, asks the core's planner where each one goes, and carries
// the plan out in three steps:
//   1. load() the tensors planned as mapped and wrap their mapped ranges in host-pointer
//      buffers (one per mapping and device);
//   2. allocate what is left of each context on its buffer type;
//   3. load() the tensors planned as loaded: straight into their ggml buffer when it is host
//      memory, else streamed piece by piece from the loader's staging to the device with
//      ggml_backend_tensor_set (quantized ones: into a host buffer, quantized, uploaded).
// Mapping first is what lets step 2 use ggml_backend_alloc_ctx_tensors_from_buft: by then every
// mapped tensor has its data and only the others are allocated.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "byte_units.hpp"
#include "ggml/binding_state.hpp"
#include "ggml/context_allocation.hpp"
#include "ggml/device_target.hpp"
#include "ggml/ggml_convert.hpp"
#include "ggml/host_buffers.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/ggml.hpp"

namespace weightmap::ggml {

namespace {

// shape_of(tensor) == shape, without building the vector: this runs for every tensor.
bool has_shape(const ggml_tensor& tensor, std::span<const std::uint64_t> shape) {
  const auto dims = static_cast<std::size_t>(ggml_n_dims(&tensor));
  if (shape.size() != dims) return false;
  for (std::size_t i = 0; i < dims; ++i) {
    if (shape[dims - 1 - i] != static_cast<std::uint64_t>(tensor.ne[i])) return false;
  }
  return true;
}

struct Item {
  std::string_view name;
  ggml_tensor* tensor = nullptr;
  detail::DeviceTarget target;
  // The core reads the file's type and ggml converts it (quantizes) into the tensor's type.
  bool ggml_converts = false;
  DType file_dtype = DType::F32;
  // What happened.
  const MappedFile* mapping = nullptr;  // set when the tensor's data points into it
  bool absent = false;
};

class Binder {
 public:
  Binder(const Model& model, const EngineTensors& tensors, const DeviceOf& device_of,
         const BindOptions& options, detail::BindingState& state)
      : model_(model), tensors_(tensors), device_of_(device_of), options_(options), state_(state) {
    core_ = options.load;
    // The core logs per load() call; bind logs one summary of its own and passes on warnings.
    core_.log = [user = options.load.log](LogLevel level, std::string_view line) {
      if (user && level == LogLevel::warning) user(level, line);
    };
  }

  void run() {
    const auto start = std::chrono::steady_clock::now();
    check_inputs();
    describe();
    plan_ = plan(model_, requests_, core_);
    map_planned();
    allocate_contexts();
    load_planned();
    convert_mapped_sources();
    report(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  // After a failure: the engine's tensors get back the empty state they came in with.
  void reset_tensors() noexcept {
    for (const auto& item : items_) {
      item.tensor->data = nullptr;
      item.tensor->buffer = nullptr;
    }
  }

 private:
  ErrorContext where(std::string_view name) const {
    const TensorInfo* info = model_.find(name);
    if (info == nullptr) return {{}, printable(name), std::nullopt};
    return {model_.files()[info->file].path, printable(name), info->offset};
  }

  void check_inputs() {
    items_.reserve(tensors_.by_name.size());
    index_.reserve(tensors_.by_name.size());
    for (const auto& [name, tensor] : tensors_.by_name) {
      // printable() only on the error path: this loop runs for every tensor.
      const auto fail = [&name = name](const char* sentence) {
        return Error(ErrorCode::invalid_argument, sentence, {{}, printable(name), std::nullopt});
      };
      if (tensor == nullptr) throw fail("the tensor is null");
      if (!index_.emplace(tensor, items_.size()).second) {
        throw fail("the same ggml tensor is listed under two names");
      }
      if (tensor->data != nullptr || tensor->buffer != nullptr) {
        throw fail("the ggml tensor has data already (create weights in a no_alloc context)");
      }
      if (tensor->view_src != nullptr || !ggml_is_contiguous(tensor)) {
        throw fail("the ggml tensor is a view or not contiguous");
      }
      items_.push_back({name, tensor});
    }
    std::vector<bool> in_context(items_.size(), false);
    for (ggml_context* context : tensors_.contexts) {
      for (ggml_tensor* t = ggml_get_first_tensor(context); t != nullptr;
           t = ggml_get_next_tensor(context, t)) {
        const auto it = index_.find(t);
        if (it == index_.end()) {
          throw Error(ErrorCode::invalid_argument,
                      "a tensor of the contexts has no name in the tensor map (bind allocates "
                      "every tensor of the contexts it is given)",
                      {{}, printable(ggml_get_name(t)), std::nullopt});
        }
        in_context[it->second] = true;
      }
    }
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (!in_context[i]) {
        throw Error(ErrorCode::invalid_argument, "the tensor is in none of the given contexts",
                    {{}, printable(items_[i].name), std::nullopt});
      }
    }
  }

  // One request per tensor: its type and shape, and its device's caps. A type the core cannot
  // convert into but ggml can quantize into is requested as stored, read on the host.
  void describe() {
    requests_.reserve(items_.size());
    using Key = std::tuple<ggml_backend_dev_t, ggml_backend_buffer_type_t, std::size_t>;
    std::map<Key, detail::DeviceTarget> targets;
    const detail::DeviceTarget* last = nullptr;  // most tensors go where the one before went
    Key last_key;
    for (auto& item : items_) {
      // Device properties can cost a system call (CPU memory) or a round trip (RPC): asked
      // once per device and buffer type.
      const TensorDevice placed = device_of_(item.name, *item.tensor);
      const Key key{placed.device, placed.buffer_type, placed.alignment};
      if (last == nullptr || key != last_key) {
        auto known = targets.find(key);
        if (known == targets.end()) {
          known = targets.emplace(key, detail::device_target(placed, item.name)).first;
        }
        last = &known->second;  // map nodes stay put
        last_key = key;
      }
      item.target = *last;
      TensorRequest request;
      request.name = std::string(item.name);
      request.optional = options_.optional && options_.optional(item.name);
      const DType wanted = dtype_of(item.tensor->type);
      const TensorInfo* info = model_.find(item.name);
      if (info != nullptr && !can_convert(info->dtype, wanted) &&
          detail::ggml_can_convert(info->dtype, wanted)) {
        if (info->element_count() != static_cast<std::uint64_t>(ggml_nelements(item.tensor))) {
          throw Error(ErrorCode::invalid_argument,
                      fmt::format("the ggml tensor's shape [{}] does not have the {} elements of "
                                  "the tensor's shape [{}] in the file",
                                  fmt::join(shape_of(*item.tensor), ", "), info->element_count(),
                                  fmt::join(info->shape, ", ")),
                      where(item.name));
        }
        item.ggml_converts = true;
        item.file_dtype = info->dtype;
        request.device = DeviceCaps{true, 1};
      } else {
        if (info == nullptr || info->dtype != wanted) request.dtype = wanted;
        // The file's shape needs no request shape (no copy, no comparison in the planner).
        if (info == nullptr || !has_shape(*item.tensor, info->shape)) {
          request.shape = shape_of(*item.tensor);
        }
        request.device = item.target.caps;
      }
      requests_.push_back(std::move(request));
    }
  }

  std::vector<std::size_t> planned(Placement placement) const {
    std::vector<std::size_t> out;
    for (const auto& p : plan_.tensors) {
      if (p.placement == placement) out.push_back(p.request);
    }
    return out;
  }

  // The part of plan_ for these requests, numbered as load() expects. Their shapes move
  // into it (bind reads only the other fields of plan_ afterwards).
  Plan part_of_plan(const std::vector<std::size_t>& which) {
    Plan part;
    part.files = plan_.files;  // the facts bind planned with: load() gathers none again
    part.tensors.reserve(which.size());
    for (std::size_t k = 0; k < which.size(); ++k) {
      PlannedTensor& planned = plan_.tensors[which[k]];
      std::vector<std::uint64_t> shape = std::move(planned.shape);
      part.tensors.push_back(planned);  // without its shape: no copy
      part.tensors.back().shape = std::move(shape);
      part.tensors.back().request = k;
    }
    return part;
  }

  // load() carries out bind's plan: planning once is a third of bind's time on 1,000 tensors.
  LoadedModel load_subset(const std::vector<std::size_t>& which,
                          const std::vector<TensorRequest>& requests) {
    LoadedModel loaded = load(model_, requests, core_, part_of_plan(which));
    if (loaded.tensors.size() != which.size()) {
      throw Error(ErrorCode::invalid_argument, "the loader returned fewer tensors than planned");
    }
    notes_.insert(notes_.end(), loaded.report.notes.begin(), loaded.report.notes.end());
    return loaded;
  }

  void map_planned() {
    const auto which = planned(Placement::mapped);
    for (const std::size_t i : planned(Placement::absent)) items_[i].absent = true;
    if (which.empty()) return;
    // Usually every tensor is mapped: then the requests go as they are, without copies.
    std::vector<TensorRequest> subset;
    if (which.size() != requests_.size()) {
      subset.reserve(which.size());
      for (const std::size_t i : which) subset.push_back(requests_[i]);
    }
    LoadedModel loaded = load_subset(which, subset.empty() ? requests_ : subset);
    cache_ = loaded.report.cache;

    std::vector<detail::MappedTensor> direct;
    for (std::size_t k = 0; k < which.size(); ++k) {
      Item& item = items_[which[k]];
      const TensorStorage& storage = loaded.tensors[k];
      if (item.ggml_converts) {
        convert_sources_.push_back({which[k], storage});
      } else {
        direct.push_back({item.tensor, &storage, &item.target});
        item.mapping = storage.mapping.get();
      }
    }
    const std::size_t before = state_.buffers.size();
    detail::wrap_mapped_tensors(direct, state_.buffers);
    state_.report.host_pointer_buffers = state_.buffers.size() - before;
    state_.mapped.reserve(direct.size());
    for (std::size_t k = 0; k < which.size(); ++k) {
      if (!items_[which[k]].ggml_converts) state_.mapped.push_back(std::move(loaded.tensors[k]));
    }
  }

  void allocate_contexts() {
    for (ggml_context* context : tensors_.contexts) {
      const Item* first = nullptr;
      const Item* unallocated = nullptr;
      for (ggml_tensor* t = ggml_get_first_tensor(context); t != nullptr;
           t = ggml_get_next_tensor(context, t)) {
        const Item& item = items_[index_.at(t)];
        if (first == nullptr) first = &item;
        if (t->data != nullptr) continue;
        if (unallocated == nullptr) {
          unallocated = &item;
        } else if (item.target.buffer_type != unallocated->target.buffer_type) {
          throw Error(
              ErrorCode::invalid_argument,
              fmt::format("its context also holds {} for {}, but this tensor goes to {}: give "
                          "each buffer type its own context",
                          printable(unallocated->name),
                          ggml_backend_buft_name(unallocated->target.buffer_type),
                          ggml_backend_buft_name(item.target.buffer_type)),
              {{}, printable(item.name), std::nullopt});
        }
      }
      if (first == nullptr) continue;  // an empty context
      // With every tensor mapped ggml allocates nothing and returns NULL, which is not an
      // error; allocate_unmapped tells the two apart.
      const Item& owner = unallocated != nullptr ? *unallocated : *first;
      if (ggml_backend_buffer_t buffer =
              detail::allocate_unmapped(context, owner.target.buffer_type)) {
        state_.buffers.push_back(buffer);
        ++state_.report.allocated_buffers;
      }
    }
    for (const auto& item : items_) {
      if (item.absent) ggml_backend_tensor_memset(item.tensor, 0, 0, ggml_nbytes(item.tensor));
    }
  }

  void load_planned() {
    const auto which = planned(Placement::loaded);
    if (which.empty()) return;
    std::vector<TensorRequest> requests;
    requests.reserve(which.size());
    for (const std::size_t i : which) {
      TensorRequest request = requests_[i];
      const Item& item = items_[i];
      if (!item.ggml_converts && ggml_backend_buffer_is_host(item.tensor->buffer)) {
        // Host memory: the loader fills the ggml buffer itself, no second copy.
        request.destination = item.tensor->data;
        request.destination_size = ggml_nbytes(item.tensor);
      } else if (!item.ggml_converts) {
        // Device memory: pieces go from the loader's staging straight to the device, so no
        // host copy of the tensor is made and one worker reads while another uploads. Uploads
        // to one device take turns: a backend's transfer (an RPC connection, say) need not
        // take two at once.
        std::mutex& turn = upload_turns_[item.target.device];
        request.sink = [tensor = item.tensor, &turn](std::span<const std::byte> piece,
                                                     std::uint64_t offset) {
          const std::lock_guard lock(turn);
          ggml_backend_tensor_set(tensor, piece.data(), static_cast<std::size_t>(offset),
                                  piece.size());
        };
      }
      requests.push_back(std::move(request));
    }
    LoadedModel loaded = load_subset(which, requests);
    workers_ = loaded.report.workers;
    peak_staging_ = loaded.report.peak_staging_bytes;
    if (!cache_) cache_ = loaded.report.cache;
    for (std::size_t k = 0; k < which.size(); ++k) {
      Item& item = items_[which[k]];
      const TensorStorage& storage = loaded.tensors[k];
      if (requests[k].destination != nullptr || requests[k].sink) continue;
      if (item.ggml_converts) {
        detail::convert_with_ggml(item.file_dtype, storage.bytes, *item.tensor, where(item.name));
        continue;
      }
      if (storage.bytes.size() != ggml_nbytes(item.tensor)) {
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("the loader gave {} bytes for a ggml tensor of {} bytes",
                                storage.bytes.size(), ggml_nbytes(item.tensor)),
                    where(item.name));
      }
      ggml_backend_tensor_set(item.tensor, storage.bytes.data(), 0, storage.bytes.size());
    }
  }

  void convert_mapped_sources() {
    for (const auto& [i, storage] : convert_sources_) {
      const Item& item = items_[i];
      detail::convert_with_ggml(item.file_dtype, storage.bytes, *item.tensor, where(item.name));
    }
    convert_sources_.clear();  // lets mappings nothing else points into go
  }

  void report(double seconds) {
    BindReport& out = state_.report;
    LoadReport& r = out.load;
    std::vector<const MappedFile*> files;             // a few; tensors of one file come together
    std::vector<ggml_backend_dev_t> device_of_count;  // parallel to out.devices
    for (std::size_t i = 0; i < items_.size(); ++i) {
      const Item& item = items_[i];
      if (item.absent) {
        r.missing_optional.emplace_back(item.name);
        continue;
      }
      const std::uint64_t bytes = ggml_nbytes(item.tensor);
      auto it = std::find(device_of_count.begin(), device_of_count.end(), item.target.device);
      if (it == device_of_count.end()) {
        device_of_count.push_back(item.target.device);
        out.devices.push_back({item.target.device_name});
        it = device_of_count.end() - 1;
      }
      DeviceCounts& device = out.devices[static_cast<std::size_t>(it - device_of_count.begin())];
      if (item.mapping != nullptr) {
        if (files.empty() || files.back() != item.mapping) {
          if (std::find(files.begin(), files.end(), item.mapping) == files.end()) {
            files.push_back(item.mapping);
          }
        }
        ++r.mapped_tensors;
        r.mapped_bytes += bytes;
        ++device.mapped_tensors;
        device.mapped_bytes += bytes;
        continue;
      }
      const PlannedTensor& planned = plan_.tensors[i];
      ++r.loaded_tensors;
      r.loaded_bytes += bytes;
      ++device.loaded_tensors;
      device.loaded_bytes += bytes;
      if (!ggml_backend_buffer_is_host(item.tensor->buffer)) ++device.uploaded_tensors;
      if (item.ggml_converts) {
        ++out.quantized_tensors;
        ++r.converted_tensors;
        ++r.reasons[Reason::dtype_differs];
      } else {
        if (planned.dtype != planned.file_dtype) ++r.converted_tensors;
        if (planned.reason) ++r.reasons[*planned.reason];
      }
    }
    r.mapped_files = files.size();
    r.seconds = seconds;
    r.unrequested = plan_.unrequested;
    r.unrequested_bytes = plan_.unrequested_bytes;
    r.workers = workers_;
    r.peak_staging_bytes = peak_staging_;
    if (cache_) r.cache = *cache_;
    r.notes = std::move(notes_);

    if (const auto& log = options_.load.log) {
      log(LogLevel::info, r.summary_line());
      log(LogLevel::info, out.devices_line());
      for (const auto& [reason, count] : r.reasons) {
        log(LogLevel::debug,
            fmt::format("loaded {} tensors because {}", count, reason_sentence(reason)));
      }
      if (!r.unrequested.empty()) {
        log(LogLevel::debug, fmt::format("{} tensors in the files were not requested ({:.1f} MiB)",
                                         r.unrequested.size(), mib(r.unrequested_bytes)));
      }
    }
  }

  const Model& model_;
  const EngineTensors& tensors_;
  const DeviceOf& device_of_;
  const BindOptions& options_;
  detail::BindingState& state_;
  LoadOptions core_;

  std::vector<Item> items_;
  std::unordered_map<const ggml_tensor*, std::size_t> index_;
  std::map<ggml_backend_dev_t, std::mutex> upload_turns_;  // one per device, for sinks
  std::vector<TensorRequest> requests_;
  Plan plan_;
  std::vector<std::pair<std::size_t, TensorStorage>> convert_sources_;
  std::vector<std::string> notes_;
  std::optional<CachePolicy> cache_;
  unsigned workers_ = 0;
  std::uint64_t peak_staging_ = 0;
};

}  // namespace

Binding bind(const Model& model, const EngineTensors& tensors, const DeviceOf& device_of,
             const BindOptions& options) {
  Binding binding;
  Binder binder(model, tensors, device_of, options, *binding.state_);
  try {
    binder.run();
  } catch (...) {
    binder.reset_tensors();
    throw;  // the binding frees what was made
  }
  return binding;
}

}  // namespace weightmap::ggml
