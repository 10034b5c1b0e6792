// Log lines with a level and a timestamp, for the long-running processes (`fedtrain server`,
// `fedtrain worker`, their transports): one line per message on stderr,
//   2026-12-07T23:15:02.123Z INFO fedtrain server: 4 workers joined
// (UTC, milliseconds). A thin layer of our own: Debian 12's Abseil (20220623) has no absl/log.
// The level is process-wide (SetLogLevel; every command's --log-level); FT_LOG drops a line
// below it before formatting its arguments. Each line is one fwrite under a mutex, so lines
// from different threads never interleave. Thread-safe.
#ifndef FEDTRAIN_CORE_LOG_H_
#define FEDTRAIN_CORE_LOG_H_

#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fedtrain {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warning" (or "warn"), "error"; InvalidArgument listing them otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
absl::string_view LogLevelName(LogLevel level);  // "DEBUG", "INFO", "WARNING", "ERROR"

// The least severe level printed (default kInfo).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
inline bool LogEnabled(LogLevel level) { return level >= GetLogLevel(); }

// Where lines go (default stderr); for tests. Not owned.
void SetLogSink(std::FILE* sink);

// Writes one line: timestamp, level, text (a trailing newline is added).
void LogLine(LogLevel level, absl::string_view text);

}  // namespace fedtrain

// FT_LOG(kWarning, "fedtrain server: refused ", why): the arguments go through absl::StrCat
// only when the level is enabled.
#define FT_LOG(level, ...)                                                      \
  do {                                                                          \
    if (::fedtrain::LogEnabled(::fedtrain::LogLevel::level))                    \
      ::fedtrain::LogLine(::fedtrain::LogLevel::level, ::absl::StrCat(__VA_ARGS__)); \
  } while (0)

#endif  // FEDTRAIN_CORE_LOG_H_
