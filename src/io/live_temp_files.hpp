// The temporary files this process is writing, so that SIGINT and SIGTERM remove them before
// the process dies: Ctrl-C in the middle of a write leaves neither a partial output nor a
// hidden temporary file.
//
// The first remember_temp_file() installs a handler for SIGINT and SIGTERM (not for a signal
// that is ignored, as under nohup). The handler unlinks every remembered path (unlink is
// async-signal-safe; nothing else is done in it) and then gives the signal to the handler
// that was there before: a function is called, the default action is restored and the
// signal raised again, so the process dies of it as it would have without us.
#pragma once

#include <string>

namespace weightmap::io {

// Remembers `path`, a temporary file this process created. Returns the slot for
// forget_temp_file(), or -1 when the path is too long or every slot is taken (the file is
// then left to the stale-temporary cleanup of a later run).
int remember_temp_file(const std::string& path) noexcept;

// Forgets a slot remember_temp_file() returned (-1 is ignored). Call it after the file was
// renamed or removed.
void forget_temp_file(int slot) noexcept;

}  // namespace weightmap::io
