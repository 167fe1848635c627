// Running helper programs from tests: the Python scripts of tests/python (gguf-py, torch)
// and a few shell tools. Output is captured with stderr folded in, so a failure shows it.
#pragma once

#include <fmt/format.h>
#include <stdio.h>

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weightmap::test {

// `text` as one single-quoted shell word.
inline std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

// Runs `command` in a shell; returns its output, or nullopt (and what went wrong, with the
// output, in `failure`) when it fails.
inline std::optional<std::string> run_command(const std::string& command, std::string& failure) {
  FILE* pipe = ::popen(fmt::format("{} 2>&1", command).c_str(), "r");
  if (pipe == nullptr) {
    failure = fmt::format("popen failed for: {}", command);
    return std::nullopt;
  }
  std::string output;
  std::array<char, 4096> buffer{};
  while (const std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) {
    output.append(buffer.data(), n);
  }
  if (const int status = ::pclose(pipe); status != 0) {
    failure = fmt::format("`{}` failed ({}):\n{}", command, status, output);
    return std::nullopt;
  }
  return output;
}

// Runs tests/python/SCRIPT ARGS... with Debian's python and llama.cpp's gguf-py importable;
// returns a description of the failure, or nullopt when it succeeded.
inline std::optional<std::string> run_python_script(const std::string& script,
                                                    const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  std::string command = fmt::format(
      "PYTHONPATH={} {} {}", shell_quote((fs::path(WEIGHTMAP_LLAMA_SRC_DIR) / "gguf-py").string()),
      shell_quote(WEIGHTMAP_TEST_PYTHON),
      shell_quote((fs::path(WEIGHTMAP_TEST_SCRIPTS_DIR) / script).string()));
  for (const auto& arg : args) fmt::format_to(std::back_inserter(command), " {}", shell_quote(arg));
  std::string failure;
  if (!run_command(command, failure)) return failure;
  return std::nullopt;
}

}  // namespace weightmap::test
