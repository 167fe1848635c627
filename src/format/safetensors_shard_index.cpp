// `model.safetensors.index.json`, written by transformers and diffusers next to the shards
// of a large model: {"metadata": {"total_size": N, ...}, "weight_map": {tensor: shard}}.
#include <fmt/format.h>
#include <simdjson.h>

#include <string_view>

#include "format/index_checks.hpp"
#include "format/readers.hpp"
#include "format/safetensors_json.hpp"
#include "weightmap/error.hpp"

namespace weightmap::format {
namespace {

namespace ondemand = simdjson::ondemand;
using safetensors_json::describe;

// Real indexes are a few hundred KiB; the same bound as a safetensors header.
constexpr std::uint64_t kMaxIndexBytes = 100'000'000;

class ShardIndexParser {
 public:
  explicit ShardIndexParser(const std::string& file) : file_(file) {}

  ShardIndex parse(ondemand::parser& parser, simdjson::padded_string_view json) {
    ondemand::document doc;
    if (const auto error = parser.iterate(json).get(doc)) fail_json(error);
    ondemand::object root;
    if (const auto error = doc.get_object().get(root)) {
      if (error == simdjson::INCORRECT_TYPE) fail("the shard index is not a JSON object");
      fail_json(error);
    }
    ShardIndex index;
    bool seen_weight_map = false;
    bool seen_metadata = false;
    for (auto field_result : root) {
      ondemand::field field;
      if (const auto error = std::move(field_result).get(field)) fail_json(error);
      std::string_view key;
      if (const auto error = field.unescaped_key().get(key)) fail_json(error);
      // Other keys are left to whoever wrote them.
      if (key == "weight_map") {
        if (seen_weight_map) fail("\"weight_map\" appears twice");
        seen_weight_map = true;
        parse_weight_map(field.value(), index);
      } else if (key == "metadata") {
        if (seen_metadata) fail("\"metadata\" appears twice");
        seen_metadata = true;
        parse_metadata(field.value(), index);
      }
    }
    const char* trailing = nullptr;
    if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
      fail("the shard index has more text after its JSON object");
    }
    if (!seen_weight_map) fail("the shard index has no \"weight_map\"");
    check_unique_tensors(index);
    return index;
  }

 private:
  [[noreturn]] void fail(std::string message, std::string_view tensor = {},
                         ErrorCode code = ErrorCode::malformed) const {
    throw Error(code, std::move(message), {file_, printable(tensor)});
  }

  [[noreturn]] void fail_json(simdjson::error_code error) const {
    if (error == simdjson::UTF8_ERROR) fail("the shard index is not valid UTF-8");
    fail(fmt::format("the shard index is not valid JSON: {}", describe(error)));
  }

  // Calls on_field(key, value) for each field of the object `value`, which the index calls
  // `name`.
  template <typename OnField>
  void for_each_field(ondemand::value value, std::string_view name, OnField on_field) {
    ondemand::object object;
    if (const auto error = value.get_object().get(object)) {
      if (error == simdjson::INCORRECT_TYPE) fail(fmt::format("\"{}\" is not an object", name));
      fail_json(error);
    }
    for (auto field_result : object) {
      ondemand::field field;
      if (const auto error = std::move(field_result).get(field)) fail_json(error);
      std::string_view key;
      if (const auto error = field.unescaped_key().get(key)) fail_json(error);
      on_field(key, field.value());
    }
  }

  void parse_weight_map(ondemand::value value, ShardIndex& index) {
    for_each_field(value, "weight_map", [&](std::string_view tensor, ondemand::value shard_value) {
      auto& entry = index.weight_map.emplace_back(std::string(tensor), std::string());
      std::string_view shard;
      if (const auto error = shard_value.get_string().get(shard)) {
        if (error == simdjson::INCORRECT_TYPE) {
          fail("the \"weight_map\" entry is not a shard file name", entry.first);
        }
        fail_json(error);
      }
      entry.second.assign(shard);
    });
  }

  // Values are numbers (total_size, total_parameters) or strings; both are kept as text.
  void parse_metadata(ondemand::value value, ShardIndex& index) {
    for_each_field(value, "metadata", [&](std::string_view key, ondemand::value field_value) {
      auto& entry = index.metadata.emplace_back(std::string(key), MetadataValue{});
      entry.second.value = metadata_text(field_value, entry.first);
    });
  }

  std::string metadata_text(ondemand::value value, const std::string& key) {
    ondemand::json_type type;
    if (const auto error = value.type().get(type)) fail_json(error);
    if (type == ondemand::json_type::string) {
      std::string_view text;
      if (const auto error = value.get_string().get(text)) fail_json(error);
      return std::string(text);
    }
    if (type == ondemand::json_type::number) {
      // Integers in canonical decimal; other numbers as the file spells them, once simdjson
      // has proved they are numbers.
      const std::string_view token = safetensors_json::trim_token(value.raw_json_token());
      std::uint64_t unsigned_value = 0;
      std::int64_t signed_value = 0;
      double real_value = 0;
      if (value.get_uint64().get(unsigned_value) == simdjson::SUCCESS) {
        return fmt::format("{}", unsigned_value);
      }
      if (value.get_int64().get(signed_value) == simdjson::SUCCESS) {
        return fmt::format("{}", signed_value);
      }
      if (value.get_double().get(real_value) == simdjson::SUCCESS) return std::string(token);
      fail(fmt::format("\"metadata\" value of \"{}\" is not a valid number (found {})",
                       printable(key), printable(token)));
    }
    fail(fmt::format("\"metadata\" value of \"{}\" is neither a number nor a string",
                     printable(key)));
  }

  void check_unique_tensors(const ShardIndex& index) const {
    const auto& entries = index.weight_map;
    if (const auto repeat = find_repeated_name(
            entries.size(), [&](std::size_t i) -> std::string_view { return entries[i].first; })) {
      fail("the tensor is listed twice in \"weight_map\"", entries[repeat->second].first,
           ErrorCode::duplicate);
    }
  }

  const std::string& file_;
};

}  // namespace

ShardIndex read_safetensors_shard_index(const io::ByteSource& source) {
  const std::uint64_t size = source.size();
  if (size > kMaxIndexBytes) {
    throw Error(
        ErrorCode::malformed,
        fmt::format("the shard index is {} bytes, over the limit of {}", size, kMaxIndexBytes),
        {source.name()});
  }
  safetensors_json::JsonScratch scratch;
  const auto json = scratch.load(source, 0, static_cast<std::size_t>(size));
  return ShardIndexParser(source.name()).parse(scratch.parser(), json);
}

}  // namespace weightmap::format
