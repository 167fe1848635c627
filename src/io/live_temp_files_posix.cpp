#include "io/live_temp_files.hpp"

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "io/signal_chain_posix.hpp"

namespace weightmap::io {
namespace {

constexpr int kSlots = 64;                // outputs written at the same time by one process
constexpr std::size_t kPathBytes = 4096;  // PATH_MAX

enum SlotState : int { kFree = 0, kFilling = 1, kLive = 2 };

// A slot's path is written only while the slot is kFilling, and read by the handler only
// while it is kLive. std::atomic<int> is lock-free, so the handler may read it.
struct Slot {
  std::atomic<int> state{kFree};
  char path[kPathBytes];
};
Slot g_slots[kSlots];

constexpr std::array<int, 2> kSignals = {SIGINT, SIGTERM};
// The handlers that were installed before ours; written once, before ours is installed.
struct sigaction g_previous[kSignals.size()];

void chain(std::size_t index, int signal, siginfo_t* info, void* context) {
  if (call_previous_handler(g_previous[index], signal, info, context)) return;
  // The default action: put it back and send the signal again. It is blocked in here and
  // delivered when this handler returns, so the process dies of it (exit status and all).
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  sigaction(signal, &default_action, nullptr);
  raise(signal);
}

// Async-signal-safe: atomic loads, unlink, sigaction, raise.
void on_signal(int signal, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  for (Slot& slot : g_slots) {
    if (slot.state.load(std::memory_order_acquire) == kLive) ::unlink(slot.path);
  }
  errno = saved_errno;
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    if (kSignals[i] == signal) chain(i, signal, info, context);
  }
}

void install_handlers() {
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    if (sigaction(kSignals[i], nullptr, &g_previous[i]) != 0) continue;
    // Ignored (nohup and friends): the signal cannot end the write, so nothing to clean.
    if (g_previous[i].sa_handler == SIG_IGN) continue;
    struct sigaction action {};
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (const int other : kSignals) sigaddset(&action.sa_mask, other);
    sigaction(kSignals[i], &action, nullptr);
  }
}

}  // namespace

int remember_temp_file(const std::string& path) noexcept {
  static std::once_flag installed;
  if (path.size() >= kPathBytes) return -1;
  try {
    std::call_once(installed, install_handlers);
  } catch (...) {
    return -1;
  }
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (g_slots[i].state.compare_exchange_strong(expected, kFilling, std::memory_order_acquire)) {
      std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
      g_slots[i].state.store(kLive, std::memory_order_release);
      return i;
    }
  }
  return -1;
}

void forget_temp_file(int slot) noexcept {
  if (slot >= 0 && slot < kSlots) g_slots[slot].state.store(kFree, std::memory_order_release);
}

}  // namespace weightmap::io
