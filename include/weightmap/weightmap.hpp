// The core API in one include: formats, mapping, planning and loading, conversion, LoRA,
// writers. The ggml adapter (weightmap/ggml.hpp, weightmap/ggml_lora.hpp) is separate: it
// needs ggml's headers and the weightmap::ggml library.
#pragma once

#include "weightmap/cache_policy.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"
#include "weightmap/fault_guard.hpp"
#include "weightmap/file_facts.hpp"
#include "weightmap/file_identity.hpp"
#include "weightmap/load.hpp"
#include "weightmap/load_options.hpp"
#include "weightmap/load_report.hpp"
#include "weightmap/loaded_model.hpp"
#include "weightmap/lora.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/metadata.hpp"
#include "weightmap/model.hpp"
#include "weightmap/plan.hpp"
#include "weightmap/prefetch.hpp"
#include "weightmap/reason.hpp"
#include "weightmap/realign.hpp"
#include "weightmap/tensor_index.hpp"
#include "weightmap/tensor_request.hpp"
#include "weightmap/tensor_storage.hpp"
#include "weightmap/version.hpp"
#include "weightmap/writer.hpp"
