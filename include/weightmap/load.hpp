// Placement and loading: an engine asks for named tensors (the type and shape it wants, the
// device that reads them) and gets storage for each: a view straight into a memory-mapped
// model file whenever that is correct, otherwise a buffer weightmap filled (and converted)
// with bounded threads and memory. The decision is made in one place, plan(); load() carries
// it out. See docs/loading.md.
//
// This header includes the parts, one concern each:
#pragma once

#include "weightmap/load_mode.hpp"       // LoadMode: auto, mmap, read, direct
#include "weightmap/load_options.hpp"    // LoadOptions: mode, workers, staging, hooks
#include "weightmap/load_report.hpp"     // LoadReport, FileChoice: what load() did
#include "weightmap/loaded_model.hpp"    // load(), LoadedModel
#include "weightmap/plan.hpp"            // plan(), Plan, PlannedTensor
#include "weightmap/reason.hpp"          // Reason: why a tensor is loaded, not mapped
#include "weightmap/tensor_request.hpp"  // TensorRequest, DeviceCaps, TensorSink
#include "weightmap/tensor_storage.hpp"  // TensorStorage: a tensor's bytes and their owner
