// What the C API's opaque handles hold. Each handle shares ownership of what it needs (the
// model, the loaded storage), so C callers may free handles in any order.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "weightmap/load.hpp"
#include "weightmap/lora.hpp"
#include "weightmap/model.hpp"
#include "weightmap/weightmap.h"

struct weightmap_model {
  std::shared_ptr<const weightmap::Model> model;
};

// Shared by a load handle and its patcher: a patcher holds references into `loaded`, so the
// load refuses to release tensors while one exists.
struct weightmap_load_state {
  std::shared_ptr<const weightmap::Model> model;
  weightmap::LoadedModel loaded;
  std::string summary;
  bool has_patcher = false;
};

struct weightmap_load {
  std::shared_ptr<weightmap_load_state> state;
};

struct weightmap_tensor {
  weightmap::TensorStorage storage;
};

struct weightmap_lora {
  std::shared_ptr<const weightmap::LoraFile> file;
  std::optional<weightmap::LoraMatch> match;
};

struct weightmap_lora_patcher {
  std::shared_ptr<weightmap_load_state> state;
  std::unique_ptr<weightmap::LoraPatcher> patcher;
};
