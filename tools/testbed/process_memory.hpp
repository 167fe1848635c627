// The process's memory as Linux accounts it: resident pages split into anonymous (private
// copies, heap, loaded tensors) and file-backed (mapped model pages, shared with the page
// cache), and the proportional set size (shared pages divided among the processes mapping
// them). `weightmap load` and `weightmap bench` print these to show what mapping saves.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace weightmap::testbed {

struct ProcessMemory {
  std::uint64_t rss_anon_bytes = 0;  // RssAnon of /proc/self/status
  std::uint64_t rss_file_bytes = 0;  // RssFile
  std::uint64_t pss_bytes = 0;       // Pss of /proc/self/smaps_rollup
};

// The value of a "Key:   1234 kB" line of /proc status-style text, in bytes; nullopt when the
// key is missing or its value is not a number.
std::optional<std::uint64_t> proc_kib_field(std::string_view text, std::string_view key);

// Reads /proc/self/status and /proc/self/smaps_rollup. A figure the kernel does not provide
// (an old kernel without smaps_rollup, a system without /proc) is left at zero: these are
// reports, never a reason to fail a load.
ProcessMemory read_process_memory();

}  // namespace weightmap::testbed
