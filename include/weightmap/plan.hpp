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
  // The facts the plan was made with, one per model file (those given to plan(), or those it
  // gathered in the auto mode; empty when neither). load() reports them and gathers none of
  // its own, so a plan and the load that carries it out never see different facts.
  std::vector<FileFacts> files;
};

// The one place where Mapped or Loaded is decided: no environment, and no I/O but this one.
// In the auto mode it decides on the facts of each file, `files` (one per model file): when
// none are given it gathers them itself with file_facts(model), as load() does, so a plan
// made alone is the plan load() carries out.
// Throws Error(not_found) for a missing tensor that is not optional, Error(unsupported) for a
// type conversion convert.hpp cannot do, Error(invalid_argument) for a bad request
// (alignment not a power of two, destination too small) or for `files` not one per file.
Plan plan(const Model& model, std::span<const TensorRequest> requests,
          const LoadOptions& options = {}, std::span<const FileFacts> files = {});

// The facts the auto mode decides on, one per model file (statfs; no file is read).
std::vector<FileFacts> file_facts(const Model& model);

}  // namespace weightmap
WEIGHTMAP_API_END
