// Progress display for `fedtrain simulate`: a one-line bar redrawn in place on a terminal
// (round, loss, test accuracy, MB up/down, ETA), or one plain line per evaluated round when
// the output is not a terminal (logs, CI). Not thread-safe: the round loop calls it.
#ifndef FEDTRAIN_CLI_PROGRESS_H_
#define FEDTRAIN_CLI_PROGRESS_H_

#include <cstdio>
#include <string>

#include "server/coordinator.h"

namespace fedtrain {

class Progress {
 public:
  enum class Mode { kBar, kLines, kNone };
  // "auto" picks kBar when `out` is a terminal.
  static Mode ModeFor(const std::string& setting, std::FILE* out);
  Progress(Mode mode, std::FILE* out, int64_t total_rounds)
      : mode_(mode), out_(out), total_(total_rounds) {}
  void OnRound(const RoundSummary& s);
  // Ends the bar's line.
  void Finish();
  // The text of one status line (exposed for tests).
  static std::string Line(const RoundSummary& s, int64_t total, double last_acc);
  // The bar and status line drawn on a terminal `columns` wide: at most columns - 1
  // characters (a line that fills the last column wraps on some terminals). Less important
  // fields (MB down, elapsed, MB up, loss) are dropped first, then the bar shrinks or goes.
  static std::string BarLine(const RoundSummary& s, int64_t total, double last_acc, int columns);
  // The width of the terminal on `out`: $COLUMNS when it is a positive number, else the
  // terminal's (TIOCGWINSZ), else 80.
  static int Columns(std::FILE* out);

 private:
  Mode mode_;
  std::FILE* out_;
  int64_t total_;
  double last_acc_ = -1.0;
  bool drew_ = false;
  int columns_ = 0;  // 0 until the first bar is drawn
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_PROGRESS_H_
