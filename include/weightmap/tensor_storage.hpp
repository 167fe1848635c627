// Where a loaded tensor's bytes are: a view into its file's mapping or a buffer weightmap
// filled, kept alive by the handle. See docs/loading.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/export.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/reason.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

// Storage for one tensor. Copies share ownership: the mapping (or buffer) lives as long as
// any handle to it.
// The small members sit together: 128 bytes, two cache lines, per tensor.
struct TensorStorage {
  std::string name;
  std::vector<std::uint64_t> shape;
  DType dtype = DType::F32;
  bool mapped = false;
  std::optional<Reason> reason;  // why loaded
  std::span<const std::byte> bytes;
  // Non-empty when writing is allowed: loaded buffers and copy-on-write mappings.
  std::span<std::byte> writable;
  std::shared_ptr<MappedFile> mapping;  // the file's mapping, when mapped
  std::shared_ptr<void> buffer;         // weightmap's buffer, when loaded into one
};

}  // namespace weightmap
WEIGHTMAP_API_END
