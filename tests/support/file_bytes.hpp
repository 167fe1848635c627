// A whole file's bytes, for tests that check a file was left exactly as it was.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace weightmap::testing {

inline std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace weightmap::testing
