// For plugins that write to sockets through a library that uses write(2) (hiredis does): a
// write to a connection the peer closed raises SIGPIPE, which kills the application unless it
// ignores the signal. NoSigpipe, held around such calls, keeps the signal from this thread
// whatever the application's signal setup: it blocks SIGPIPE, consumes one the calls raised,
// and restores the thread's mask. The call then fails with EPIPE like any other write error.
//
//   {
//     dogpile::NoSigpipe guard;
//     redisGetReply(context, &reply);
//   }
#pragma once

#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace dogpile {

class NoSigpipe {
 public:
  NoSigpipe() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    // One already pending is the application's: left for it.
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec no_wait{0, 0};
        sigtimedwait(&pipe_, nullptr, &no_wait);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace dogpile
