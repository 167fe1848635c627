// Handing a signal on to the handler that was installed before ours, for the library's two
// signal handlers (the fault guard's SIGBUS, the temporary files' SIGINT and SIGTERM). What
// each does when there was none (the default action or SIG_IGN) differs, so that stays theirs.
#pragma once

#include <signal.h>

namespace weightmap::io {

// Calls `previous` when it is a handler of its own (neither SIG_DFL nor SIG_IGN) and returns
// true; returns false otherwise. Async-signal-safe.
inline bool call_previous_handler(const struct sigaction& previous, int signal, siginfo_t* info,
                                  void* context) noexcept {
  if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) return false;
  if ((previous.sa_flags & SA_SIGINFO) != 0) {
    previous.sa_sigaction(signal, info, context);
  } else {
    previous.sa_handler(signal);
  }
  return true;
}

}  // namespace weightmap::io
