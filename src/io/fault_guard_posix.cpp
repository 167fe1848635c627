// The fault guard on POSIX systems: a SIGBUS handler and sigsetjmp/siglongjmp. (A Windows port
// would catch EXCEPTION_IN_PAGE_ERROR with structured exception handling instead.)
#include "weightmap/fault_guard.hpp"

#include <fmt/format.h>
#include <setjmp.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "io/page.hpp"
#include "io/signal_chain_posix.hpp"

namespace weightmap {
namespace fault_detail {
namespace {

// One guarded read in progress on this thread. It lives in run_guarded's frame, which the
// handler jumps back to, so it outlives every frame the jump abandons.
struct GuardFrame {
  sigjmp_buf jump;
  const std::byte* begin = nullptr;  // the guarded range, widened to whole pages
  const std::byte* end = nullptr;
  const std::byte* volatile fault = nullptr;  // written by the handler before it jumps
  GuardFrame* previous = nullptr;             // an enclosing guarded read on this thread
};

// initial-exec TLS: reading it from the handler never allocates (dynamic TLS may, on a
// thread's first access), and a constant-initialized pointer has no guard or destructor.
[[gnu::tls_model("initial-exec")]] thread_local GuardFrame* t_innermost = nullptr;

// The handler that was installed before ours; written once, before ours is installed.
struct sigaction g_previous {};

// Gives the signal to whoever had it before us, as if we were never installed.
void chain(int signal, siginfo_t* info, void* context) {
  if (io::call_previous_handler(g_previous, signal, info, context)) return;
  const bool sent = info == nullptr || info->si_code <= 0;  // kill(), raise(), sigqueue()
  if (sent && g_previous.sa_handler == SIG_IGN) return;     // ignored, as before us
  // The default action (and "ignored" for a fault, which the kernel does not honour): put it
  // back. A fault then re-executes the instruction on return and dies of SIGBUS with a core,
  // as without us; a sent signal is sent again (blocked in here, delivered on return).
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  sigaction(signal, &default_action, nullptr);
  if (sent) raise(signal);
}

// Async-signal-safe: reads thread-local state and jumps, or chains.
void on_sigbus(int signal, siginfo_t* info, void* context) {
  // si_code > 0: raised by the kernel for an access, so si_addr is the faulting address
  // (a SIGBUS sent with kill() or raise() has si_code <= 0 and is not ours to take).
  if (info != nullptr && info->si_code > 0) {
    const auto* address = static_cast<const std::byte*>(info->si_addr);
    for (GuardFrame* frame = t_innermost; frame != nullptr; frame = frame->previous) {
      if (address >= frame->begin && address < frame->end) {
        frame->fault = address;
        siglongjmp(frame->jump, 1);
      }
    }
  }
  chain(signal, info, context);
}

void install_handler() {
  static std::once_flag once;
  static int failure = 0;
  std::call_once(once, [] {
    if (sigaction(SIGBUS, nullptr, &g_previous) != 0) {
      failure = errno;
      return;
    }
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    sigemptyset(&action.sa_mask);
    // SA_ONSTACK: run on the thread's alternate stack when it has one. SIGBUS stays blocked
    // inside the handler; siglongjmp restores the mask sigsetjmp saved.
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    if (sigaction(SIGBUS, &action, nullptr) != 0) failure = errno;
  });
  if (failure != 0) {
    throw Error(ErrorCode::io, fmt::format("cannot install the SIGBUS handler that guards reads "
                                           "of mapped files: {}",
                                           std::strerror(failure)));
  }
}

}  // namespace

const std::byte* run_guarded(std::span<const std::byte> range, void (*read)(void* state),
                             void* state) {
  install_handler();
  const io::PageSpan pages = io::whole_pages(range.data(), range.size());
  GuardFrame frame;
  frame.begin = pages.begin;
  frame.end = pages.begin + pages.len;
  frame.previous = t_innermost;
  // No object with a destructor in this frame: an enclosing guard's jump may abandon it (a
  // fault outside this range but inside the enclosing one). So the frame is popped by hand on
  // each way out: return, jump back here, or a throwing body.
  // savemask = 1: the jump leaves the handler, in which SIGBUS is blocked; the saved mask
  // unblocks it again.
  if (sigsetjmp(frame.jump, 1) == 0) {
    t_innermost = &frame;
    try {
      read(state);
    } catch (...) {
      t_innermost = frame.previous;
      throw;
    }
    t_innermost = frame.previous;
    return nullptr;
  }
  t_innermost = frame.previous;
  return frame.fault;
}

}  // namespace fault_detail
}  // namespace weightmap
