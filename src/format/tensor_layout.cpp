#include "format/tensor_layout.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <optional>

#include "checked_math.hpp"
#include "format/index_checks.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

[[noreturn]] void reject(const std::string& path, const std::string& tensor, std::string message,
                         ErrorCode code = ErrorCode::invalid_argument) {
  throw Error(code, std::move(message), {path, printable(tensor)});
}

std::uint64_t checked_bytes(const std::string& path, const TensorToWrite& tensor,
                            const TensorRules& rules) {
  const DTypeInfo* found = nullptr;
  try {
    found = &dtype_info(tensor.dtype);
  } catch (Error& error) {
    error.add_context({path, printable(tensor.name)});
    throw;
  }
  const DTypeInfo& info = *found;
  if ((rules.needs_safetensors_name && info.safetensors_name.empty()) ||
      (rules.needs_ggml_type && !info.in_ggml)) {
    reject(path, tensor.name,
           fmt::format("{} cannot hold {} tensors", rules.format_name, info.name));
  }
  if (rules.max_dims != 0 && tensor.shape.size() > rules.max_dims) {
    reject(path, tensor.name,
           fmt::format("tensor has {} dimensions; {} allows at most {}", tensor.shape.size(),
                       rules.format_name, rules.max_dims));
  }
  const std::optional<std::uint64_t> counted = checked_product(tensor.shape);
  const std::uint64_t elements = counted.value_or(0);
  // ggml counts elements in int64_t.
  if (!counted || elements > static_cast<std::uint64_t>(INT64_MAX)) {
    reject(path, tensor.name,
           fmt::format("shape [{}] has more elements than fit in 63 bits",
                       fmt::join(tensor.shape, ", ")));
  }
  if (rules.whole_rows) {
    const std::uint64_t row = tensor.shape.empty() ? 1 : tensor.shape.back();
    if (row % info.block_size != 0) {
      reject(path, tensor.name,
             fmt::format("rows of {} elements are not a whole number of {} blocks ({} elements "
                         "each)",
                         row, info.name, info.block_size));
    }
  } else if (elements % info.block_size != 0) {
    reject(path, tensor.name,
           fmt::format("{} elements are not a whole number of {} blocks ({} elements each)",
                       elements, info.name, info.block_size));
  }
  const auto bytes = dtype_bytes_for(tensor.dtype, elements);
  if (!bytes) {
    reject(path, tensor.name,
           fmt::format("shape [{}] of {} has a size in bytes that overflows 64 bits",
                       fmt::join(tensor.shape, ", "), info.name));
  }
  return *bytes;
}

}  // namespace

std::vector<std::uint64_t> validated_tensor_bytes(const std::string& path,
                                                  const std::vector<TensorToWrite>& tensors,
                                                  const TensorRules& rules) {
  std::vector<std::uint64_t> bytes;
  bytes.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite& tensor = tensors[i];
    if (tensor.name.empty()) {
      throw Error(ErrorCode::invalid_argument, fmt::format("tensor {} has an empty name", i),
                  {path});
    }
    if (!is_valid_utf8(tensor.name)) reject(path, tensor.name, "tensor name is not valid UTF-8");
    bytes.push_back(checked_bytes(path, tensor, rules));
  }
  if (const auto repeat = find_repeated_name(
          tensors.size(), [&](std::size_t i) -> std::string_view { return tensors[i].name; })) {
    const auto [first, again] = *repeat;
    reject(path, tensors[again].name,
           fmt::format("tensor name appears twice (tensors {} and {})", first, again),
           ErrorCode::duplicate);
  }
  return bytes;
}

void check_alignment(const std::string& path, std::string_view what, std::uint64_t value,
                     std::uint64_t min, std::uint64_t max) {
  if (value < min || value > max || (value & (value - 1)) != 0) {
    throw Error(
        ErrorCode::invalid_argument,
        fmt::format("{} is {}; it must be a power of two from {} to {}", what, value, min, max),
        {path});
  }
}

}  // namespace weightmap::format
