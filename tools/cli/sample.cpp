#include "cli/sample.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <ostream>

#include "cli/human_bytes.hpp"
#include "cli/model_json.hpp"
#include "testbed/byte_size.hpp"
#include "testbed/sample_model.hpp"
#include "weightmap/error.hpp"
#include "weightmap/writer.hpp"

namespace weightmap::cli {
int run_sample(const SampleOptions& options, std::ostream& out, std::ostream& err) {
  const bool gguf = options.format == FileFormat::gguf;
  if (!testbed::sample_dtype_supported(options.dtype, gguf)) {
    err << fmt::format("weightmap sample: --dtype {} is not available for --format {}\n",
                       dtype_name(options.dtype), file_format_name(options.format));
    return kExitUsage;
  }
  if (gguf && options.hugging_face) {
    err << "weightmap sample: --hugging-face writes safetensors only\n";
    return kExitUsage;
  }
  std::vector<TensorToWrite> tensors;
  try {
    tensors = testbed::plan_sample_tensors(options.size, options.tensors, options.dtype);
    if (options.hugging_face) tensors = testbed::hugging_face_checkpoint(std::move(tensors));
  } catch (const Error& e) {
    err << "weightmap sample: " << e.message() << '\n';
    return kExitUsage;
  }

  const auto start = std::chrono::steady_clock::now();
  WrittenFile written;
  try {
    written = testbed::write_sample_file(options.path, tensors,
                                         {.format = options.format,
                                          .seed = options.seed,
                                          .hugging_face_order = options.hugging_face});
  } catch (const Error& e) {
    err << "weightmap: " << e.what() << '\n';
    return kExitError;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.json) {
    // The data area less the alignment padding between tensors.
    std::uint64_t tensor_bytes = 0;
    for (const TensorToWrite& tensor : tensors) {
      std::uint64_t elements = 1;
      for (const std::uint64_t dim : tensor.shape) elements *= dim;
      tensor_bytes += dtype_bytes_for(tensor.dtype, elements).value_or(0);
    }
    out << fmt::format(
        "{{\"path\": {}, \"format\": \"{}\", \"dtype\": \"{}\", \"tensors\": {}, "
        "\"tensor_bytes\": {}, \"bytes\": {}, \"seconds\": {:.6f}}}\n",
        json_string(options.path), file_format_name(options.format), dtype_name(options.dtype),
        tensors.size(), tensor_bytes, written.size, seconds);
    return kExitOk;
  }
  out << fmt::format("wrote {}: {} tensors, {} {} ({} bytes) in {:.2f} s ({:.2f} GB/s)\n",
                     options.path, tensors.size(), human_bytes(written.size),
                     file_format_name(options.format), written.size, seconds,
                     seconds > 0 ? static_cast<double>(written.size) / seconds / 1e9 : 0.0);
  return kExitOk;
}

Subcommand add_sample_command(CLI::App& parent) {
  struct Parsed {
    SampleOptions options;
    std::string format = "safetensors";
    std::string size = "256M";
    std::string dtype = "f16";
  };
  auto parsed = std::make_shared<Parsed>();

  CLI::App* command = parent.add_subcommand(
      "sample",
      "Write a synthetic model (UNet-like names and shapes, deterministic random values) of a "
      "given size, tensor count and dtype.");
  command->add_option("OUT", parsed->options.path, "The file to write (replaced if it exists)")
      ->required();
  command->add_option("--format", parsed->format, "safetensors or gguf")
      ->check(CLI::IsMember({"safetensors", "gguf"}))
      ->capture_default_str();
  command
      ->add_option("--size", parsed->size,
                   "Bytes of tensor data, within 1%: a number with an optional K, M, G or T "
                   "(binary: 1K = 1024; KiB and KB mean the same)")
      ->check(CLI::Validator(
          [](const std::string& text) {
            return testbed::parse_byte_size(text)
                       ? std::string()
                       : "not a size like 2G, 256M, 512KiB or 4096: " + text;
          },
          "SIZE"))
      ->capture_default_str();
  command->add_option("--tensors", parsed->options.tensors, "Number of tensors")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}))
      ->capture_default_str();
  command
      ->add_option("--dtype", parsed->dtype, "f16, bf16, f32; with --format gguf also q8_0, q4_0")
      ->check(CLI::IsMember({"f16", "bf16", "f32", "q8_0", "q4_0"}))
      ->capture_default_str();
  command->add_option("--seed", parsed->options.seed, "Seed of the values: same seed, same bytes")
      ->capture_default_str();
  command->add_flag("--hugging-face", parsed->options.hugging_face,
                    "Lay the safetensors file out as Hugging Face's writer does: norms and "
                    "biases f32, an i64 position_ids, tensors sorted by element size then name "
                    "(on 8-byte boundaries, rarely on 32)");
  command->add_flag("--json", parsed->options.json,
                    "Print one JSON object (path, format, dtype, tensors, tensor_bytes, bytes, "
                    "seconds)");

  return {command, [parsed](std::ostream& out, std::ostream& err) {
            SampleOptions options = parsed->options;
            options.format = parsed->format == "gguf" ? FileFormat::gguf : FileFormat::safetensors;
            options.size = *testbed::parse_byte_size(parsed->size);  // the validator accepted it
            options.dtype = dtype_from_name(parsed->dtype);
            return run_sample(options, out, err);
          }};
}

}  // namespace weightmap::cli
