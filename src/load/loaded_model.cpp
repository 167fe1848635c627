#include <algorithm>

#include "weightmap/load.hpp"

namespace weightmap {

const TensorStorage* LoadedModel::find(std::string_view name) const {
  const auto it = std::find_if(tensors.begin(), tensors.end(),
                               [&](const TensorStorage& t) { return t.name == name; });
  return it == tensors.end() ? nullptr : &*it;
}

void LoadedModel::release(std::string_view prefix) {
  std::erase_if(tensors, [&](const TensorStorage& t) { return t.name.starts_with(prefix); });
}

}  // namespace weightmap
