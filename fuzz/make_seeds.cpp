// Writes the seed corpus of the fuzzers: small valid files of each format.
#include <filesystem>
#include <string>

#include "testbed/synthetic_models.hpp"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "safetensors");
  std::filesystem::create_directories(dir / "gguf");
  for (const std::size_t n : {0, 1, 3}) {
    weightmap::testbed::write_safetensors_model(
        (dir / "safetensors" / ("seed-" + std::to_string(n) + ".safetensors")).string(), n);
    weightmap::testbed::write_gguf_model(
        (dir / "gguf" / ("seed-" + std::to_string(n) + ".gguf")).string(), n);
  }
  return 0;
}
