#include "cli/progress_bar.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "cli/human_bytes.hpp"

namespace weightmap::cli {
namespace {

constexpr std::size_t kWidth = 30;
constexpr auto kRedraw = std::chrono::milliseconds(100);

std::string eta_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "";
  const auto s = static_cast<std::uint64_t>(std::ceil(seconds));
  if (s < 60) return fmt::format(", {} s left", s);
  if (s < 3600) return fmt::format(", {} min {} s left", s / 60, s % 60);
  return fmt::format(", {} h {} min left", s / 3600, s / 60 % 60);
}

}  // namespace

ProgressBar::ProgressBar(std::ostream& err, bool on, std::string label, std::uint64_t total,
                         Unit unit)
    : err_(err), on_(on && total > 0), label_(std::move(label)), total_(total), unit_(unit) {}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::line(std::uint64_t done, std::chrono::duration<double> elapsed,
                              std::string_view detail) const {
  done = std::min(done, total_);
  const double fraction = static_cast<double>(done) / static_cast<double>(total_);
  const auto filled = static_cast<std::size_t>(fraction * kWidth);
  std::string text = fmt::format("{} [{:<{}}] ", label_, std::string(filled, '#'), kWidth);
  if (unit_ == Unit::steps) {
    text += fmt::format("{}/{}", done, total_);
  } else {
    const double seconds = elapsed.count();
    text +=
        fmt::format("{:5.1f}% {} of {}", 100 * fraction, human_bytes(done), human_bytes(total_));
    // A rate only once there is something to measure it on.
    if (seconds >= 0.05 && done > 0) {
      const double rate = static_cast<double>(done) / seconds;
      text += fmt::format(", {:.2f} GB/s", rate / 1e9);
      if (done < total_) text += eta_text(static_cast<double>(total_ - done) / rate);
    }
  }
  if (!detail.empty()) text += fmt::format(" {}", detail);
  return text;
}

void ProgressBar::update(std::uint64_t done, std::string_view detail) {
  if (!on_) return;
  const Clock::time_point now = Clock::now();
  if (done < total_ && now - last_draw_ < kRedraw) return;
  last_draw_ = now;
  const std::string text = line(done, now - start_, detail);
  // Spaces over what is left of a longer line drawn before.
  const std::size_t pad = drawn_width_ > text.size() ? drawn_width_ - text.size() : 0;
  err_ << '\r' << text << std::string(pad, ' ') << std::flush;
  drawn_width_ = text.size();
}

void ProgressBar::finish() {
  if (!on_) return;
  if (drawn_width_ > 0) err_ << '\r' << std::string(drawn_width_, ' ') << '\r' << std::flush;
  on_ = false;
}

bool progress_wanted(const std::ostream& err) {
  return &err == &std::cerr && ::isatty(STDERR_FILENO) == 1;
}

}  // namespace weightmap::cli
