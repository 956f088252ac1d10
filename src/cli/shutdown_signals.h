// SIGINT/SIGTERM handling shared by the long-running commands (serve, frontend, worker).
#pragma once

#include <csignal>

namespace tandem::cli {

// Blocks SIGINT and SIGTERM in the calling thread and returns the set. Call it before any thread
// starts, so every thread inherits the mask and a sigwait on the set is the one place they arrive.
sigset_t BlockShutdownSignals();

}  // namespace tandem::cli
