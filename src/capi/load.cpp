// Loading through the C API: requests, the loaded tensors (data pointer, mapped or loaded and
// why), tensor handles that outlive the load, releasing a component, and the report.
#include "weightmap/load.hpp"

#include <memory>
#include <string>
#include <vector>

#include "capi/boundary.hpp"
#include "capi/handles.hpp"
#include "capi/policy.hpp"

using weightmap::capi::BadArgument;
using weightmap::capi::count_of;
using weightmap::capi::fill_sized;
using weightmap::capi::guarded;
using weightmap::capi::index_of_found;
using weightmap::capi::require;
using weightmap::capi::require_index;

namespace {

weightmap_request default_request() {
  weightmap_request out{};
  out.struct_size = sizeof(out);
  out.dtype = WEIGHTMAP_DTYPE_AS_STORED;
  return out;
}

// The requests array's stride is its first element's struct_size: a caller compiled against
// an older (smaller) struct still steps through its array correctly.
std::vector<weightmap::TensorRequest> requests_from_c(const weightmap_model* model,
                                                      const weightmap_request* requests,
                                                      size_t count) {
  constexpr const char* call = "weightmap_load_model";
  std::vector<weightmap::TensorRequest> out;
  if (requests == nullptr) {
    if (count != 0) throw BadArgument("weightmap_load_model: requests is NULL but count is not 0");
    out.reserve(model->model->tensors().size());
    for (const auto& tensor : model->model->tensors()) out.push_back({.name = tensor.name});
    return out;
  }
  const size_t stride = requests->struct_size;
  if (stride < sizeof(size_t) + sizeof(const char*)) {
    throw BadArgument("weightmap_load_model: requests[0].struct_size is " + std::to_string(stride) +
                      "; set it to sizeof(weightmap_request)");
  }
  out.reserve(count);
  const auto* bytes = reinterpret_cast<const char*>(requests);
  for (size_t i = 0; i < count; ++i) {
    const auto* element = reinterpret_cast<const weightmap_request*>(bytes + i * stride);
    if (element->struct_size != stride) {
      throw BadArgument("weightmap_load_model: requests[" + std::to_string(i) +
                        "].struct_size differs from requests[0]'s");
    }
    const weightmap_request in = weightmap::capi::read_sized(element, default_request(), call);
    if (in.name == nullptr) {
      throw BadArgument("weightmap_load_model: requests[" + std::to_string(i) + "].name is NULL");
    }
    weightmap::TensorRequest request;
    request.name = in.name;
    if (in.dtype != WEIGHTMAP_DTYPE_AS_STORED) {
      if (in.dtype < 0) {
        throw BadArgument("weightmap_load_model: requests[" + std::to_string(i) + "].dtype is " +
                          std::to_string(in.dtype));
      }
      const auto dtype = static_cast<weightmap::DType>(in.dtype);
      weightmap::dtype_info(dtype);  // throws unknown_dtype for an id not in the table
      request.dtype = dtype;
    }
    request.writes_in_place = in.writes_in_place != 0;
    request.optional = in.optional != 0;
    request.device.reads_host_memory = in.device_cannot_read_host_memory == 0;
    if (in.alignment != 0) request.device.alignment = in.alignment;
    out.push_back(std::move(request));
  }
  return out;
}

weightmap_tensor_data describe(const weightmap::TensorStorage& tensor) {
  weightmap_tensor_data out{};
  out.name = tensor.name.c_str();
  out.dtype = static_cast<uint32_t>(tensor.dtype);
  out.dtype_name = weightmap::dtype_name(tensor.dtype).data();
  out.n_dims = tensor.shape.size();
  out.shape = tensor.shape.data();
  out.data = tensor.bytes.data();
  out.writable = tensor.writable.empty() ? nullptr : tensor.writable.data();
  out.nbytes = tensor.bytes.size();
  out.mapped = tensor.mapped ? 1 : 0;
  if (tensor.reason) {
    // Both come from string literals, so they are NUL-terminated.
    out.reason = weightmap::reason_name(*tensor.reason).data();
    out.reason_sentence = weightmap::reason_sentence(*tensor.reason).data();
  }
  return out;
}

const weightmap::TensorStorage& tensor_at(const weightmap_load* load, size_t index,
                                          const char* call) {
  require(load, call, "load");
  const auto& tensors = load->state->loaded.tensors;
  require_index(index, tensors.size(), call, "tensor");
  return tensors[index];
}

}  // namespace

extern "C" {

weightmap_status weightmap_request_init(weightmap_request* request, const char* name) {
  return guarded([&] {
    weightmap_request full = default_request();
    full.name = name;
    fill_sized(request, full, "weightmap_request_init");
  });
}

weightmap_status weightmap_load_model(const weightmap_model* model,
                                      const weightmap_request* requests, size_t count,
                                      const weightmap_load_options* options,
                                      weightmap_load** load) {
  return guarded([&] {
    require(model, "weightmap_load_model", "model");
    require(load, "weightmap_load_model", "load");
    const std::vector<weightmap::TensorRequest> cpp_requests =
        requests_from_c(model, requests, count);
    const weightmap::LoadOptions cpp_options = weightmap::capi::load_options_from_c(options);
    auto state = std::make_shared<weightmap_load_state>();
    state->model = model->model;
    state->loaded = weightmap::load(*model->model, cpp_requests, cpp_options);
    state->summary = state->loaded.report.summary_line();
    auto handle = std::make_unique<weightmap_load>();
    handle->state = std::move(state);
    *load = handle.release();
  });
}

void weightmap_load_free(weightmap_load* load) { delete load; }

weightmap_status weightmap_load_tensor_count(const weightmap_load* load, size_t* count) {
  return count_of("weightmap_load_tensor_count", load, "load", count,
                  [](const weightmap_load& l) { return l.state->loaded.tensors.size(); });
}

weightmap_status weightmap_load_find_tensor(const weightmap_load* load, const char* name,
                                            size_t* index) {
  return guarded([&] {
    constexpr const char* call = "weightmap_load_find_tensor";
    require(load, call, "load");
    require(name, call, "name");
    require(index, call, "index");
    *index = index_of_found(load->state->loaded.find(name), load->state->loaded.tensors, name,
                            "the load");
  });
}

weightmap_status weightmap_load_tensor(const weightmap_load* load, size_t index,
                                       weightmap_tensor_data* data) {
  return guarded([&] {
    constexpr const char* call = "weightmap_load_tensor";
    fill_sized(data, describe(tensor_at(load, index, call)), call);
  });
}

weightmap_status weightmap_load_tensor_ref(const weightmap_load* load, size_t index,
                                           weightmap_tensor** tensor) {
  return guarded([&] {
    constexpr const char* call = "weightmap_load_tensor_ref";
    require(tensor, call, "tensor");
    auto handle = std::make_unique<weightmap_tensor>();
    handle->storage = tensor_at(load, index, call);  // shares the mapping or buffer
    *tensor = handle.release();
  });
}

weightmap_status weightmap_tensor_data_get(const weightmap_tensor* tensor,
                                           weightmap_tensor_data* data) {
  return guarded([&] {
    require(tensor, "weightmap_tensor_data_get", "tensor");
    fill_sized(data, describe(tensor->storage), "weightmap_tensor_data_get");
  });
}

void weightmap_tensor_free(weightmap_tensor* tensor) { delete tensor; }

weightmap_status weightmap_load_release(weightmap_load* load, const char* prefix) {
  return guarded([&] {
    require(load, "weightmap_load_release", "load");
    require(prefix, "weightmap_load_release", "prefix");
    if (load->state->has_patcher) {
      throw BadArgument(
          "weightmap_load_release: a LoRA patcher uses this load; free the patcher first");
    }
    load->state->loaded.release(prefix);
  });
}

weightmap_status weightmap_reason_describe(uint32_t reason, const char** name,
                                           const char** sentence) {
  return guarded([&] {
    if (reason >= weightmap::kReasonCount) {
      throw BadArgument("weightmap_reason_describe: there is no reason " + std::to_string(reason));
    }
    const auto value = static_cast<weightmap::Reason>(reason);
    if (name != nullptr) *name = weightmap::reason_name(value).data();
    if (sentence != nullptr) *sentence = weightmap::reason_sentence(value).data();
  });
}

weightmap_status weightmap_load_get_report(const weightmap_load* load,
                                           weightmap_load_report* report) {
  return guarded([&] {
    require(load, "weightmap_load_get_report", "load");
    const weightmap::LoadReport& in = load->state->loaded.report;
    weightmap_load_report out{};
    out.mapped_tensors = in.mapped_tensors;
    out.mapped_bytes = in.mapped_bytes;
    out.mapped_files = in.mapped_files;
    out.loaded_tensors = in.loaded_tensors;
    out.loaded_bytes = in.loaded_bytes;
    out.converted_tensors = in.converted_tensors;
    out.seconds = in.seconds;
    out.unrequested_tensors = in.unrequested.size();
    out.unrequested_bytes = in.unrequested_bytes;
    out.missing_optional = in.missing_optional.size();
    out.workers = in.workers;
    out.peak_staging_bytes = in.peak_staging_bytes;
    out.mode = weightmap::load_mode_name(in.mode).data();  // a literal: NUL-terminated
    out.summary = load->state->summary.c_str();
    out.note_count = in.notes.size();
    fill_sized(report, out, "weightmap_load_get_report");
  });
}

weightmap_status weightmap_load_reason_count(const weightmap_load* load, uint32_t reason,
                                             size_t* count) {
  return guarded([&] {
    require(load, "weightmap_load_reason_count", "load");
    require(count, "weightmap_load_reason_count", "count");
    if (reason >= weightmap::kReasonCount) {
      throw BadArgument("weightmap_load_reason_count: there is no reason " +
                        std::to_string(reason));
    }
    const auto& reasons = load->state->loaded.report.reasons;
    const auto it = reasons.find(static_cast<weightmap::Reason>(reason));
    *count = it == reasons.end() ? 0 : it->second;
  });
}

weightmap_status weightmap_load_note(const weightmap_load* load, size_t index, const char** note) {
  return guarded([&] {
    require(load, "weightmap_load_note", "load");
    require(note, "weightmap_load_note", "note");
    const auto& notes = load->state->loaded.report.notes;
    require_index(index, notes.size(), "weightmap_load_note", "note");
    *note = notes[index].c_str();
  });
}

}  // extern "C"
