// Writes the seed corpus of the fuzzers: small valid files of each format, made of the sample
// generator's index-bound tensors (tools/testbed).
#include <filesystem>
#include <string>

#include "testbed/sample_model.hpp"

int main(int argc, char** argv) {
  using weightmap::FileFormat;
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "safetensors");
  std::filesystem::create_directories(dir / "gguf");
  for (const std::size_t n : {0, 1, 3}) {
    const auto tensors = weightmap::testbed::plan_index_bound_tensors(n);
    const std::string name = "seed-" + std::to_string(n);
    weightmap::testbed::write_sample_file((dir / "safetensors" / (name + ".safetensors")).string(),
                                          tensors);
    weightmap::testbed::write_sample_file((dir / "gguf" / (name + ".gguf")).string(), tensors,
                                          {.format = FileFormat::gguf});
  }
  return 0;
}
