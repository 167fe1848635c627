#include "lora/lora_adapter_metadata.hpp"

#include <simdjson.h>

#include <cmath>
#include <limits>

namespace weightmap::lora_detail {
namespace {

std::optional<float> finite_float(simdjson::dom::element value) {
  double number = 0;
  if (value.is_double()) {
    number = value.get_double().value_unsafe();
  } else if (value.is_int64()) {
    number = static_cast<double>(value.get_int64().value_unsafe());
  } else if (value.is_uint64()) {
    number = static_cast<double>(value.get_uint64().value_unsafe());
  } else {
    return std::nullopt;
  }
  if (!std::isfinite(number) || std::fabs(number) > std::numeric_limits<float>::max() ||
      number == 0) {
    return std::nullopt;
  }
  return static_cast<float>(number);
}

// "name" is the key, or ends with "." + key (PEFT matches pattern keys against the end of
// a module's name).
bool names(std::string_view name, std::string_view key) {
  if (key.empty()) return false;
  if (name == key) return true;
  return name.size() > key.size() && name.ends_with(key) &&
         name[name.size() - key.size() - 1] == '.';
}

std::optional<float> lookup(const AdapterAlphas& alphas, std::string_view name) {
  for (const auto& [key, alpha] : alphas.pattern) {
    if (names(name, key)) return alpha;
  }
  return alphas.alpha;
}

}  // namespace

AdapterMetadata AdapterMetadata::parse(std::string_view json) {
  AdapterMetadata out;
  simdjson::dom::parser parser;
  simdjson::dom::object object;
  if (parser.parse(json.data(), json.size()).get_object().get(object) != simdjson::SUCCESS) {
    return out;
  }
  for (const auto field : object) {
    const std::string_view key = field.key;
    // The field name is the last dotted part: "transformer.lora_alpha", "lora_alpha".
    const auto dot = key.rfind('.');
    const std::string_view component = dot == std::string_view::npos ? "" : key.substr(0, dot);
    const std::string_view name = dot == std::string_view::npos ? key : key.substr(dot + 1);
    if (name == "lora_alpha") {
      if (const auto alpha = finite_float(field.value)) {
        out.by_component_[std::string(component)].alpha = alpha;
      }
    } else if (name == "alpha_pattern") {
      simdjson::dom::object pattern;
      if (field.value.get_object().get(pattern) != simdjson::SUCCESS) continue;
      auto& entries = out.by_component_[std::string(component)].pattern;
      for (const auto entry : pattern) {
        if (const auto alpha = finite_float(entry.value)) {
          entries.emplace(std::string(entry.key), *alpha);
        }
      }
    }
  }
  return out;
}

std::optional<float> AdapterMetadata::alpha_for(std::string_view module) const {
  const auto dot = module.find('.');
  if (dot != std::string_view::npos) {
    const auto found = by_component_.find(module.substr(0, dot));
    if (found != by_component_.end() && !found->first.empty()) {
      if (const auto alpha = lookup(found->second, module.substr(dot + 1))) return alpha;
    }
  }
  const auto plain = by_component_.find(std::string_view());
  if (plain != by_component_.end()) return lookup(plain->second, module);
  return std::nullopt;
}

}  // namespace weightmap::lora_detail
