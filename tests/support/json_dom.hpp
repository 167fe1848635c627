// A CLI's --json output parsed with simdjson's DOM, for tests that check fields and values.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace weightmap::test {

// The parser owns the document the root points into, so they travel together.
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
};

// Parses `text`; a parse failure is a test failure that shows the text.
inline std::unique_ptr<Json> parse_json(const std::string& text) {
  auto json = std::make_unique<Json>();
  EXPECT_EQ(json->parser.parse(text).get(json->root), simdjson::SUCCESS) << text;
  return json;
}

// The unsigned integer at top-level `key`; a missing key or another type fails the test.
inline std::uint64_t json_u64(const Json& json, const char* key) {
  std::uint64_t value = 0;
  EXPECT_EQ(json.root[key].get(value), simdjson::SUCCESS) << key;
  return value;
}

// The string at top-level `key`; a missing key or another type fails the test.
inline std::string json_text(const Json& json, const char* key) {
  std::string_view value;
  EXPECT_EQ(json.root[key].get(value), simdjson::SUCCESS) << key;
  return std::string(value);
}

}  // namespace weightmap::test
