#include "cli/progress.h"

#include <unistd.h>

#include <cmath>

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

std::string Progress::Line(const RoundSummary& s, int64_t total, double last_acc) {
  const int64_t done = static_cast<int64_t>(s.round) + 1;
  const double eta = done > 0 ? s.wall_s / done * (total - done) : 0.0;
  std::string acc = last_acc >= 0 ? absl::StrFormat("%.2f%%", 100.0 * last_acc) : "--";
  std::string line = absl::StrFormat(
      "round %d/%d  loss %.4f  acc %s  up %.1f MB  down %.1f MB  %s elapsed  ETA %s", done, total,
      s.train_loss, acc, s.cum_bytes_up / 1e6, s.cum_bytes_down / 1e6, Duration(s.wall_s),
      Duration(eta));
  if (s.privacy)
    absl::StrAppend(&line, absl::StrFormat("  eps %.4g (delta %.3g, %s)", s.privacy->epsilon,
                                           s.privacy->delta, s.privacy_guarantee));
  if (s.rejected > 0) absl::StrAppend(&line, "  rejected ", s.rejected);
  return line;
}

void Progress::OnRound(const RoundSummary& s) {
  if (mode_ == Mode::kNone) return;
  if (s.test) last_acc_ = s.test->accuracy;
  const std::string line = Line(s, total_, last_acc_);
  if (mode_ == Mode::kBar) {
    const int width = 24;
    const int64_t done = static_cast<int64_t>(s.round) + 1;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    std::fprintf(out_, "\r\033[K[%s] %s", bar.c_str(), line.c_str());
    drew_ = true;
  } else if (s.test || static_cast<int64_t>(s.round) + 1 == total_) {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  for (const std::string& why : s.rejections) {
    if (mode_ == Mode::kBar) std::fprintf(out_, "\n");
    std::fprintf(out_, "round %llu: rejected %s\n", static_cast<unsigned long long>(s.round),
                 why.c_str());
  }
  std::fflush(out_);
}

void Progress::Finish() {
  if (mode_ == Mode::kBar && drew_) std::fprintf(out_, "\n");
  std::fflush(out_);
}

}  // namespace fedtrain
