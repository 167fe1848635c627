#include "cli/realign_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <ostream>
#include <span>

#include "cli/human_bytes.hpp"
#include "cli/model_json.hpp"
#include "cli/power_of_two_option.hpp"
#include "weightmap/error.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::cli {
namespace {

std::string plural(std::uint64_t count, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", count, count == 1 ? one : many);
}

void write_result(const RealignCommandOptions& options, const RealignResult& result,
                  std::ostream& out) {
  const std::uint32_t alignment = options.realign.alignment;
  out << fmt::format("wrote {}: {}, {}, {}, alignment {}\n", options.output,
                     file_format_name(result.format), plural(result.tensors, "tensor", "tensors"),
                     human_bytes(result.size), alignment);
  if (result.reordered) {
    out << fmt::format(
        "order: tensors whose size is not a multiple of {} bytes moved to the end (safetensors "
        "allows no gaps between tensors)\n",
        alignment);
  }
  if (result.padding_tensors > 0) {
    out << fmt::format("padding: {} ({}) named __padding_N__ fill the gaps\n",
                       plural(result.padding_tensors, "padding tensor", "padding tensors"),
                       human_bytes(result.padding_bytes));
  }
  if (result.unaligned.empty()) {
    out << fmt::format("every tensor starts on a {}-byte boundary\n", alignment);
    return;
  }
  out << fmt::format(
      "not aligned: {} not on a {}-byte boundary: safetensors allows no gaps, and the sizes "
      "before {} do not add up to a multiple of {}\n",
      plural(result.unaligned.size(), "tensor is", "tensors are"), alignment,
      result.unaligned.size() == 1 ? "it" : "them", alignment);
  for (const auto& [name, offset] : result.unaligned) {
    out << fmt::format("  {} at byte {}\n", printable(name), offset);
  }
  out << "--padding-tensors aligns every tensor by filling the gaps with extra U8 tensors "
         "(loaders that want exactly the model's tensors may refuse them)\n";
}

void write_json(const RealignCommandOptions& options, const RealignResult& result,
                std::ostream& out) {
  std::vector<std::string> unaligned;
  for (const auto& [name, offset] : result.unaligned) {
    unaligned.push_back(
        fmt::format("{{\"tensor\": {}, \"offset\": {}}}", json_string(name), offset));
  }
  out << fmt::format(
      "{{\"path\": {}, \"input\": {}, \"format\": \"{}\", \"tensors\": {}, \"bytes\": {}, "
      "\"alignment\": {}, \"reordered\": {}, \"padding_tensors\": {}, \"padding_bytes\": {}, "
      "\"unaligned\": [{}]}}\n",
      json_string(options.output), json_string(options.input), file_format_name(result.format),
      result.tensors, result.size, options.realign.alignment, result.reordered,
      result.padding_tensors, result.padding_bytes, fmt::join(unaligned, ", "));
}

}  // namespace

int run_realign(const RealignCommandOptions& options, std::ostream& out, std::ostream& err) {
  // An output that is the input under another name is a usage error (exit 2); realign checks
  // it again on the file it opened.
  try {
    refuse_output_over_inputs(options.output, std::span(&options.input, 1));
  } catch (const Error& e) {
    err << "weightmap realign: " << e.what() << '\n';
    return kExitUsage;
  }
  try {
    const RealignResult result = realign(options.input, options.output, options.realign);
    if (options.json) {
      write_json(options, result, out);
    } else {
      write_result(options, result, out);
    }
    return kExitOk;
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
}

Subcommand add_realign_command(CLI::App& parent) {
  auto parsed = std::make_shared<RealignCommandOptions>();

  CLI::App* command = parent.add_subcommand(
      "realign",
      "Rewrite a safetensors or GGUF file so that every tensor starts on a multiple of "
      "--alignment bytes and can be mapped by devices that need it (ggml backends ask 32). "
      "safetensors: tensors reordered, header padded; GGUF: general.alignment set, order and "
      "metadata kept. See docs/realign.md.");
  command->add_option("IN", parsed->input, "A .safetensors or .gguf file")->required();
  command->add_option("-o,--output", parsed->output, "The file to write (never IN itself)")
      ->type_name("OUT")
      ->required();
  command
      ->add_option("--alignment", parsed->realign.alignment,
                   "Byte alignment of every tensor's offset in the file")
      ->type_name("N")
      ->capture_default_str()
      ->check(power_of_two_validator(kMinRealignment, kMaxRealignment));
  command->add_flag("--padding-tensors", parsed->realign.padding_tensors,
                    "safetensors: fill the gaps that reordering cannot avoid with extra U8 "
                    "tensors named __padding_N__, so every tensor of the model is aligned");
  command->add_flag("--json", parsed->json,
                    "Print one JSON object (path, input, format, tensors, bytes, alignment, "
                    "reordered, padding_tensors, padding_bytes, unaligned)");

  return {command, [parsed](std::ostream& out, std::ostream& err) {
            return run_realign(*parsed, out, err);
          }};
}

}  // namespace weightmap::cli
