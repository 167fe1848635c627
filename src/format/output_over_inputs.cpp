#include "format/output_over_inputs.hpp"

#include <fmt/format.h>

#include <optional>
#include <vector>

#include "io/identity_at.hpp"
#include "io/replacing_output.hpp"
#include "weightmap/error.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::format {

void refuse_output_over_inputs(const std::string& output, std::span<const ModelFile> inputs) {
  std::vector<FileIdentity> identities;
  identities.reserve(inputs.size());
  for (const ModelFile& input : inputs) identities.push_back(input.identity);
  if (const auto same = io::find_same_file(output, identities)) {
    throw Error(ErrorCode::invalid_argument,
                fmt::format("the output is the input file {} itself; weightmap never writes "
                            "over an input, so write to another path",
                            inputs[*same].path),
                {output});
  }
}

}  // namespace weightmap::format

namespace weightmap {

void refuse_output_over_inputs(const std::string& output, std::span<const std::string> inputs) {
  std::vector<ModelFile> files;
  for (const std::string& input : inputs) {
    std::optional<FileIdentity> identity;
    try {
      identity = io::identity_at(input);
    } catch (const Error&) {
      continue;  // not a plain file: reading it will say what it is
    }
    if (identity) files.push_back({.path = input, .identity = *identity});
  }
  format::refuse_output_over_inputs(output, files);
}

}  // namespace weightmap
