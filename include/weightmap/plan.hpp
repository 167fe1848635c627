// The one place where a requested tensor becomes Mapped (a view into its file's mapping) or
// Loaded (copied, with a Reason): plan(). load() carries a plan out. See docs/loading.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/file_facts.hpp"
#include "weightmap/load_options.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/model.hpp"
#include "weightmap/reason.hpp"
#include "weightmap/tensor_request.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

enum class Placement {
  mapped,  // a view into the file's mapping
  loaded,  // a buffer filled by the loader
  absent,  // an optional tensor the files lack
};

// The planner's decision for one request.
struct PlannedTensor {
  std::size_t request = 0;  // index into the requests
  std::size_t tensor = 0;   // index into model.tensors() (not for absent)
  Placement placement = Placement::absent;
  std::optional<Reason> reason;  // set when loaded
  std::uint32_t file = 0;        // where the bytes are (not for absent)
  std::uint64_t offset = 0;
  std::uint64_t file_bytes = 0;  // bytes in the file
  DType file_dtype = DType::F32;
  DType dtype = DType::F32;           // what the caller gets
  std::vector<std::uint64_t> shape;   // what the caller gets
  std::uint64_t bytes = 0;            // what the caller gets
  Access access = Access::read_only;  // of the mapping, when mapped
};

struct Plan {
  std::vector<PlannedTensor> tensors;    // one per request, in request order
  std::vector<std::string> unrequested;  // tensors of the files nobody asked for, file order
  std::uint64_t unrequested_bytes = 0;
};

// The one place where Mapped or Loaded is decided. Pure: no I/O, no environment.
// Throws Error(not_found) for a missing tensor that is not optional, Error(unsupported) for a
// type conversion convert.hpp cannot do, Error(invalid_argument) for a bad request
// (alignment not a power of two, destination too small).
// `files` (one per model file, or empty) is used in the auto mode only.
Plan plan(const Model& model, std::span<const TensorRequest> requests,
          const LoadOptions& options = {}, std::span<const FileFacts> files = {});

// The facts plan() takes in the auto mode, one per model file (statfs; no file is read).
std::vector<FileFacts> file_facts(const Model& model);

}  // namespace weightmap
WEIGHTMAP_API_END
