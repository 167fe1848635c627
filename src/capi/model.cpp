// Opening a model and describing its files and tensors through the C API.
#include "weightmap/model.hpp"

#include <memory>
#include <string>
#include <vector>

#include "capi/boundary.hpp"
#include "capi/handles.hpp"
#include "weightmap/dtype.hpp"

using weightmap::capi::BadArgument;
using weightmap::capi::count_of;
using weightmap::capi::fill_sized;
using weightmap::capi::guarded;
using weightmap::capi::index_of_found;
using weightmap::capi::require;
using weightmap::capi::require_index;

extern "C" {

weightmap_status weightmap_dtype_name(uint32_t dtype, const char** name) {
  return guarded([&] {
    require(name, "weightmap_dtype_name", "name");
    // The table's names are string literals, so data() is NUL-terminated.
    *name = weightmap::dtype_info(static_cast<weightmap::DType>(dtype)).name.data();
  });
}

weightmap_status weightmap_dtype_from_name(const char* name, uint32_t* dtype) {
  return guarded([&] {
    require(name, "weightmap_dtype_from_name", "name");
    require(dtype, "weightmap_dtype_from_name", "dtype");
    *dtype = static_cast<uint32_t>(weightmap::dtype_from_name(name));
  });
}

weightmap_status weightmap_open(const char* const* paths, const char* const* prefixes, size_t count,
                                weightmap_model** model) {
  return guarded([&] {
    constexpr const char* call = "weightmap_open";
    require(model, call, "model");
    require(paths, call, "paths");
    if (count == 0) throw BadArgument("weightmap_open: no path given (count is 0)");
    std::vector<weightmap::ModelSource> sources;
    sources.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      if (paths[i] == nullptr) {
        throw BadArgument("weightmap_open: paths[" + std::to_string(i) + "] is NULL");
      }
      const char* prefix = prefixes != nullptr && prefixes[i] != nullptr ? prefixes[i] : "";
      sources.push_back({paths[i], prefix});
    }
    auto handle = std::make_unique<weightmap_model>();
    handle->model = std::make_shared<const weightmap::Model>(weightmap::open_model(sources));
    *model = handle.release();
  });
}

void weightmap_model_free(weightmap_model* model) { delete model; }

weightmap_status weightmap_model_file_count(const weightmap_model* model, size_t* count) {
  return count_of("weightmap_model_file_count", model, "model", count,
                  [](const weightmap_model& m) { return m.model->files().size(); });
}

weightmap_status weightmap_model_file(const weightmap_model* model, size_t index, const char** path,
                                      const char** format, uint64_t* size) {
  return guarded([&] {
    constexpr const char* call = "weightmap_model_file";
    require(model, call, "model");
    const auto& files = model->model->files();
    require_index(index, files.size(), call, "file");
    const weightmap::ModelFile& file = files[index];
    if (path != nullptr) *path = file.path.c_str();
    // file_format_name returns literals.
    if (format != nullptr) *format = weightmap::file_format_name(file.format).data();
    if (size != nullptr) *size = file.size;
  });
}

weightmap_status weightmap_model_tensor_count(const weightmap_model* model, size_t* count) {
  return count_of("weightmap_model_tensor_count", model, "model", count,
                  [](const weightmap_model& m) { return m.model->tensors().size(); });
}

weightmap_status weightmap_model_tensor_info(const weightmap_model* model, size_t index,
                                             weightmap_tensor_info* info) {
  return guarded([&] {
    constexpr const char* call = "weightmap_model_tensor_info";
    require(model, call, "model");
    const auto& tensors = model->model->tensors();
    require_index(index, tensors.size(), call, "tensor");
    const weightmap::TensorInfo& tensor = tensors[index];
    weightmap_tensor_info full{};
    full.name = tensor.name.c_str();
    full.dtype = static_cast<uint32_t>(tensor.dtype);
    full.dtype_name = weightmap::dtype_name(tensor.dtype).data();
    full.n_dims = tensor.shape.size();
    full.shape = tensor.shape.data();
    full.file = tensor.file;
    full.offset = tensor.offset;
    full.nbytes = tensor.nbytes;
    full.contiguous = tensor.strides.empty() ? 1 : 0;
    fill_sized(info, full, call);
  });
}

weightmap_status weightmap_model_find_tensor(const weightmap_model* model, const char* name,
                                             size_t* index) {
  return guarded([&] {
    constexpr const char* call = "weightmap_model_find_tensor";
    require(model, call, "model");
    require(name, call, "name");
    require(index, call, "index");
    *index = index_of_found(model->model->find(name), model->model->tensors(), name, "the model");
  });
}

}  // extern "C"
