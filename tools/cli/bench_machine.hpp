// What machine a bench ran on and how busy it was, recorded with its figures so a table
// made from them (scripts/bench-table.py) says where and when they were measured.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace weightmap::cli {

struct MachineFacts {
  std::string cpu;     // /proc/cpuinfo's first "model name"; "" when unknown
  unsigned cores = 0;  // online processors
  std::uint64_t memory_bytes = 0;
  std::string kernel;                  // uname's release
  std::string transparent_huge_pages;  // "always", "madvise", "never"; "" when unknown
};

MachineFacts machine_facts();

// getloadavg(): 1, 5 and 15 minutes; -1 each when unknown.
std::array<double, 3> load_average();

// The time now, "2026-12-03T16:20:05Z".
std::string utc_now();

}  // namespace weightmap::cli
