// The one progress bar of the command line (load, cache --prefetch, bench): one line on
// stderr, redrawn in place, only on a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>

namespace weightmap::cli {

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Unit {
    bytes,  // "45.0% 1.2 GiB of 2.0 GiB, 1.1 GB/s, 1 s left"
    steps,  // "3/40 mmap" (the detail names the step)
  };

  // Draws nothing unless `on`.
  ProgressBar(std::ostream& err, bool on, std::string label, std::uint64_t total,
              Unit unit = Unit::bytes);
  ~ProgressBar();  // a bar that did not finish (an error) clears its line too
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` of the total so far. Redraws at most every 100 ms, and always at the end.
  void update(std::uint64_t done, std::string_view detail = {});
  // Clears the line, so what is printed next starts on a clean one.
  void finish();

  // The line for `done` after `elapsed` (public for its test).
  std::string line(std::uint64_t done, std::chrono::duration<double> elapsed,
                   std::string_view detail) const;

 private:
  std::ostream& err_;
  bool on_;
  std::string label_;
  std::uint64_t total_;
  Unit unit_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  std::size_t drawn_width_ = 0;
};

// Whether a command should draw bars on `err`: it is the process's own stderr (not a test's
// string stream, not a file) and that is a terminal.
bool progress_wanted(const std::ostream& err);

}  // namespace weightmap::cli
