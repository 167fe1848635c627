// weightmap's dtype ids below 1000 are ggml_type values (tests/ggml/dtype_table_test.cpp
// checks the whole table against ggml), so the mapping is a cast guarded by the table.
#include "weightmap/ggml_types.hpp"

#include <fmt/format.h>

#include "weightmap/error.hpp"

namespace weightmap::ggml {

ggml_type ggml_type_of(DType dtype) {
  const DTypeInfo& info = dtype_info(dtype);
  if (!info.in_ggml || static_cast<std::uint32_t>(dtype) >= GGML_TYPE_COUNT) {
    throw Error(ErrorCode::unsupported, fmt::format("ggml has no type {}", info.name));
  }
  return static_cast<ggml_type>(dtype);
}

DType dtype_of(ggml_type type) {
  const auto id = static_cast<std::uint32_t>(type);
  const auto dtype = find_dtype_by_ggml_id(id);
  if (!dtype || !dtype_info(*dtype).in_ggml) {
    throw Error(ErrorCode::unsupported, fmt::format("ggml type id {} is unknown to weightmap", id));
  }
  return *dtype;
}

}  // namespace weightmap::ggml
