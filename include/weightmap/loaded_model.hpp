// load(): plans, maps and loads, and gives the engine its tensors' storage and a report.
// See docs/loading.md.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/load_options.hpp"
#include "weightmap/load_report.hpp"
#include "weightmap/model.hpp"
#include "weightmap/plan.hpp"
#include "weightmap/tensor_request.hpp"
#include "weightmap/tensor_storage.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct LoadedModel {
  std::vector<TensorStorage> tensors;  // request order; absent optional tensors left out
  LoadReport report;

  const TensorStorage* find(std::string_view name) const;
  // Drops the handles of every tensor whose name starts with `prefix` (one component);
  // mappings no other handle uses are unmapped (and evicted, with dontneed).
  void release(std::string_view prefix);
};

// Plans, maps and loads. Logs one INFO line (summary_line) and per-reason DEBUG lines through
// options.log. Throws weightmap::Error: everything plan() throws; Error(io) naming file,
// tensor and offset for a read that fails or comes up short (a file truncated under us);
// Error(cancelled) when the progress callback or options.cancel cancels (buffers already
// filled are freed).
LoadedModel load(const Model& model, std::span<const TensorRequest> requests,
                 const LoadOptions& options = {});

// Carries out a plan the caller already made with plan() for the same model, requests and
// options (to allocate device buffers first, say), without planning again. Throws
// Error(invalid_argument) when the plan does not belong to these requests.
LoadedModel load(const Model& model, std::span<const TensorRequest> requests,
                 const LoadOptions& options, Plan planned);

}  // namespace weightmap
WEIGHTMAP_API_END
