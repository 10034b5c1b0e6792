#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fedtrain {

Progress::Mode Progress::ModeFor(const std::string& setting, std::FILE* out) {
  if (setting == "bar") return Mode::kBar;
  if (setting == "lines") return Mode::kLines;
  if (setting == "none") return Mode::kNone;
  return isatty(fileno(out)) ? Mode::kBar : Mode::kLines;
}

namespace {
std::string Duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "--";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60);
  if (t >= 60) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%ds", t);
}
}  // namespace

namespace {

// The fields of a status line, each with its drop rank (0: never dropped; higher: dropped
// earlier when the terminal is narrow).
struct Field {
  std::string text;
  int drop_rank;
};

std::vector<Field> Fields(const RoundSummary& s, int64_t total, double last_acc) {
  const int64_t done = static_cast<int64_t>(s.round) + 1;
  const double eta = done > 0 ? s.wall_s / done * (total - done) : 0.0;
  std::string acc = last_acc >= 0 ? absl::StrFormat("%.2f%%", 100.0 * last_acc) : "--";
  std::vector<Field> f = {
      {absl::StrFormat("round %d/%d", done, total), 0},
      {absl::StrFormat("loss %.4f", s.train_loss), 2},
      {absl::StrCat("acc ", acc), 0},
      {absl::StrFormat("up %.1f MB", s.cum_bytes_up / 1e6), 3},
      {absl::StrFormat("down %.1f MB", s.cum_bytes_down / 1e6), 5},
      {absl::StrCat(Duration(s.wall_s), " elapsed"), 4},
      {absl::StrCat("ETA ", Duration(eta)), 1},
  };
  if (s.privacy)  // the privacy spent so far is never dropped
    f.push_back({absl::StrFormat("eps %.4g (delta %.3g, %s)", s.privacy->epsilon,
                                 s.privacy->delta, s.privacy_guarantee), 0});
  if (s.rejected > 0) f.push_back({absl::StrCat("rejected ", s.rejected), 0});
  return f;
}

std::string JoinFields(const std::vector<Field>& f, int max_rank) {
  std::string line;
  for (const Field& x : f) {
    if (x.drop_rank > max_rank) continue;
    if (!line.empty()) line += "  ";
    line += x.text;
  }
  return line;
}

}  // namespace

std::string Progress::Line(const RoundSummary& s, int64_t total, double last_acc) {
  return JoinFields(Fields(s, total, last_acc), 1 << 30);
}

std::string Progress::BarLine(const RoundSummary& s, int64_t total, double last_acc,
                              int columns) {
  constexpr int kMaxBar = 24, kMinBar = 8;
  const int room = std::max(columns - 1, 1);
  const std::vector<Field> fields = Fields(s, total, last_acc);
  int max_rank = 5;
  std::string line = JoinFields(fields, max_rank);
  // "[bar] " costs bar + 3 characters.
  while (max_rank > 0 && static_cast<int>(line.size()) + 3 + kMinBar > room)
    line = JoinFields(fields, --max_rank);
  const int bar_width = std::min(kMaxBar, room - static_cast<int>(line.size()) - 3);
  if (bar_width < kMinBar) return line.substr(0, room);
  const int64_t done = static_cast<int64_t>(s.round) + 1;
  const int filled = total > 0 ? static_cast<int>(bar_width * std::min(done, total) / total)
                               : bar_width;
  std::string bar(filled, '#');
  bar.append(bar_width - filled, '.');
  return absl::StrCat("[", bar, "] ", line);
}

int Progress::Columns(std::FILE* out) {
  if (const char* env = std::getenv("COLUMNS")) {
    int n = 0;
    if (absl::SimpleAtoi(env, &n) && n > 0) return n;
  }
  struct winsize ws {};
  if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void Progress::OnRound(const RoundSummary& s) {
  if (mode_ == Mode::kNone) return;
  if (s.test) last_acc_ = s.test->accuracy;
  if (mode_ == Mode::kBar) {
    if (columns_ == 0) columns_ = Columns(out_);
    std::fprintf(out_, "\r\033[K%s", BarLine(s, total_, last_acc_, columns_).c_str());
    drew_ = true;
  } else if (s.test || static_cast<int64_t>(s.round) + 1 == total_) {
    std::fprintf(out_, "%s\n", Line(s, total_, last_acc_).c_str());
  }
  for (const std::string& why : s.rejections) {
    if (mode_ == Mode::kBar) std::fprintf(out_, "\n");
    std::fprintf(out_, "round %llu: rejected %s\n", static_cast<unsigned long long>(s.round) + 1,
                 why.c_str());
  }
  std::fflush(out_);
}

void Progress::Finish() {
  if (mode_ == Mode::kBar && drew_) std::fprintf(out_, "\n");
  std::fflush(out_);
}

}  // namespace fedtrain
