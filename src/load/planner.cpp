// The one place where a requested tensor becomes Mapped or Loaded. The decision is pure: it
// reads the validated index, the requests and the files' facts, never a file or the
// environment; only the auto mode's facts, when the caller gives none, come from statfs.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "io/page.hpp"
#include "load/mappable.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"

namespace weightmap {
namespace {

// Mapping bases are page-aligned, so a tensor offset aligned to `alignment` gives an aligned
// pointer only up to the page size. The page size is not I/O; the planner stays pure.
std::uint64_t mapping_base_alignment() { return io::page_size(); }

std::optional<std::uint64_t> element_count(std::span<const std::uint64_t> shape) {
  std::uint64_t count = 1;
  for (const auto dim : shape) {
    if (dim != 0 && count > UINT64_MAX / dim) return std::nullopt;
    count *= dim;
  }
  return count;
}

ErrorContext where(const Model& model, const TensorInfo& tensor) {
  return {model.files()[tensor.file].path, printable(tensor.name), tensor.offset};
}

// The request's alignment for a tensor stored as `stored`, checked.
std::size_t checked_alignment(const TensorRequest& request, DType stored) {
  const std::size_t alignment = required_alignment(request.device, stored);
  if ((alignment & (alignment - 1)) != 0) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("device alignment {} is not a power of two", alignment),
                {{}, printable(request.name)});
  }
  return alignment;
}

// Why the tensor cannot be a view into its file's mapping; nullopt when it can. The order
// puts what the bytes are (count, type, storage) before what the caller or device chose.
std::optional<Reason> why_loaded(const Model& model, const TensorInfo& tensor,
                                 const TensorRequest& request, const LoadOptions& options,
                                 std::span<const FileFacts> files) {
  if (request.shape) {
    const auto wanted = element_count(*request.shape);
    if (!wanted || *wanted != tensor.element_count()) return Reason::element_count_differs;
  }
  if (request.dtype && *request.dtype != tensor.dtype) return Reason::dtype_differs;
  if (!loader::stored_mappable(model.files()[tensor.file], tensor)) {
    return Reason::format_cannot_be_mapped;
  }
  if (options.mode == LoadMode::read || options.mode == LoadMode::direct) {
    return Reason::mapping_disabled;
  }
  if (!request.device.reads_host_memory) return Reason::device_cannot_read_host_memory;
  // The caller wants the bytes in its own place (a buffer or a sink): one reason for both,
  // after the device's, so the two report alike for the same device.
  if (request.destination != nullptr || request.sink) return Reason::mapping_disabled;
  if (options.mode == LoadMode::automatic && tensor.file < files.size() &&
      files[tensor.file].risky_to_map) {
    return Reason::risky_filesystem;
  }
  const std::size_t alignment = checked_alignment(request, tensor.dtype);
  if (alignment > mapping_base_alignment() || tensor.offset % alignment != 0) {
    return Reason::misaligned_for_device;
  }
  if (request.writes_in_place && !options.allow_copy_on_write) {
    return Reason::copy_on_write_refused;
  }
  return std::nullopt;
}

PlannedTensor decide(const Model& model, const TensorInfo& tensor, const TensorRequest& request,
                     const LoadOptions& options, std::span<const FileFacts> files) {
  checked_alignment(request, tensor.dtype);
  if (request.destination != nullptr && request.sink) {
    throw Error(ErrorCode::invalid_argument,
                "the request gives both a destination and a sink; it takes one or the other",
                where(model, tensor));
  }
  PlannedTensor planned;
  planned.file = tensor.file;
  planned.offset = tensor.offset;
  planned.file_bytes = tensor.nbytes;
  planned.file_dtype = tensor.dtype;
  planned.dtype = request.dtype.value_or(tensor.dtype);
  planned.shape = request.shape.value_or(tensor.shape);
  planned.bytes = tensor.nbytes;
  planned.reason = why_loaded(model, tensor, request, options, files);
  planned.placement = planned.reason ? Placement::loaded : Placement::mapped;
  if (planned.placement == Placement::mapped && request.writes_in_place) {
    planned.access = Access::copy_on_write;
  }

  if (planned.dtype != tensor.dtype && planned.reason != Reason::element_count_differs) {
    if (!can_convert(tensor.dtype, planned.dtype)) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("cannot convert {} to {}", dtype_name(tensor.dtype),
                              dtype_name(planned.dtype)),
                  where(model, tensor));
    }
    const auto bytes = dtype_bytes_for(planned.dtype, tensor.element_count());
    if (!bytes) {
      throw Error(ErrorCode::unsupported,
                  fmt::format("{} elements do not make whole blocks of {}", tensor.element_count(),
                              dtype_name(planned.dtype)),
                  where(model, tensor));
    }
    planned.bytes = *bytes;
  }
  if (request.destination != nullptr && planned.reason != Reason::element_count_differs &&
      request.destination_size < planned.bytes) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("the destination holds {} bytes but the tensor needs {}",
                            request.destination_size, planned.bytes),
                where(model, tensor));
  }
  return planned;
}

}  // namespace

std::size_t required_alignment(const DeviceCaps& device, DType dtype) {
  return device.alignment != 0 ? device.alignment : dtype_info(dtype).alignment;
}

Plan plan(const Model& model, std::span<const TensorRequest> requests, const LoadOptions& options,
          std::span<const FileFacts> files) {
  Plan out;
  if (!files.empty() && files.size() != model.files().size()) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{} file facts given for a model of {} files; give one per file",
                            files.size(), model.files().size()));
  }
  if (files.empty() && options.mode == LoadMode::automatic) {
    out.files = file_facts(model);
  } else {
    out.files.assign(files.begin(), files.end());
  }
  files = out.files;
  out.tensors.reserve(requests.size());
  // By position in the index: one name lookup per request, none for the unrequested list.
  const auto& tensors = model.tensors();
  std::vector<bool> requested(tensors.size(), false);
  std::size_t next = 0;  // the tensor after the last one found
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const TensorRequest& request = requests[i];
    // Engines mostly ask in file order: comparing with the next tensor's name costs less
    // than hashing the name (a third of planning 1,000 tensors).
    const TensorInfo* tensor = next < tensors.size() && tensors[next].name == request.name
                                   ? &tensors[next]
                                   : model.find(request.name);
    if (tensor == nullptr) {
      if (!request.optional) {
        throw Error(ErrorCode::not_found,
                    "the model has no tensor of this name (mark the request optional if it may "
                    "be absent)",
                    {model.files().size() == 1 ? model.files()[0].path : std::string(),
                     printable(request.name)});
      }
      PlannedTensor absent;
      absent.request = i;
      absent.placement = Placement::absent;
      out.tensors.push_back(std::move(absent));
      continue;
    }
    PlannedTensor planned = decide(model, *tensor, request, options, files);
    planned.request = i;
    planned.tensor = static_cast<std::size_t>(tensor - tensors.data());
    requested[planned.tensor] = true;
    next = planned.tensor + 1;
    out.tensors.push_back(std::move(planned));
  }

  // One mapping per file: a file with any tensor patched in place is mapped copy-on-write,
  // and every mapped tensor of it shares that mapping.
  std::vector<bool> copy_on_write(model.files().size(), false);
  for (const auto& planned : out.tensors) {
    if (planned.placement == Placement::mapped && planned.access == Access::copy_on_write) {
      copy_on_write[planned.file] = true;
    }
  }
  for (auto& planned : out.tensors) {
    if (planned.placement == Placement::mapped && copy_on_write[planned.file]) {
      planned.access = Access::copy_on_write;
    }
  }

  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (requested[i]) continue;
    out.unrequested.push_back(tensors[i].name);
    out.unrequested_bytes += tensors[i].nbytes;
  }
  return out;
}

}  // namespace weightmap
