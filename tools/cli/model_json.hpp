// `weightmap inspect --json`: the model as one JSON object. simdjson (our parser) has no
// writer, and the output is small and flat, so it is written with fmt.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "weightmap/model.hpp"

namespace weightmap::cli {

// `text` as a quoted JSON string. Control characters are escaped; bytes that are not valid
// UTF-8 become U+FFFD, so the output is always valid UTF-8 JSON.
std::string json_string(std::string_view text);

// A metadata value as a JSON value: integers exact, f32 in the shortest text that reads back
// as the same float, NaN and infinities as the strings "nan", "inf", "-inf", arrays as
// arrays. Throws Error(unsupported) for arrays nested deeper than JSON output allows.
std::string json_value(const MetadataValue& value);

// {"files": [{"path", "format", "size"}],
//  "tensors": [{"name", "dtype", "shape", "file", "offset", "nbytes"}],
//  "metadata": {key: value}}
// with `tensors` in the given order. A key found in several files keeps its first value.
void write_model_json(const Model& model, const std::vector<const TensorInfo*>& tensors,
                      std::ostream& out);

}  // namespace weightmap::cli
