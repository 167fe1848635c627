#include "testbed/process_memory.hpp"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace weightmap::testbed {
namespace {

std::string read_text(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::uint64_t> proc_kib_field(std::string_view text, std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
      continue;
    }
    line.remove_prefix(key.size() + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    std::uint64_t kib = 0;
    const auto [rest, ec] = std::from_chars(line.data(), line.data() + line.size(), kib);
    if (ec != std::errc() || rest == line.data() || kib > (UINT64_MAX >> 10)) return std::nullopt;
    return kib << 10;  // the kernel's "kB" are KiB
  }
  return std::nullopt;
}

ProcessMemory read_process_memory() {
  ProcessMemory memory;
  const std::string status = read_text("/proc/self/status");
  memory.rss_anon_bytes = proc_kib_field(status, "RssAnon").value_or(0);
  memory.rss_file_bytes = proc_kib_field(status, "RssFile").value_or(0);
  memory.pss_bytes = proc_kib_field(read_text("/proc/self/smaps_rollup"), "Pss").value_or(0);
  return memory;
}

}  // namespace weightmap::testbed
