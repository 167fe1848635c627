#include "cli/bench_machine.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "cli/bench_fill.hpp"

namespace weightmap::cli {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("model name")) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) break;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

}  // namespace

MachineFacts machine_facts() {
  MachineFacts facts;
  facts.cpu = cpu_model();
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  facts.cores = cores > 0 ? static_cast<unsigned>(cores) : 0;
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    facts.memory_bytes = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
  }
  utsname names{};
  if (::uname(&names) == 0) facts.kernel = names.release;
  facts.transparent_huge_pages = transparent_huge_pages_mode();
  return facts;
}

std::array<double, 3> load_average() {
  std::array<double, 3> loads{-1, -1, -1};
  if (::getloadavg(loads.data(), 3) != 3) loads = {-1, -1, -1};
  return loads;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", utc);
}

}  // namespace weightmap::cli
