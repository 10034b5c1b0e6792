// Axis ticks for the figure (plot.h): linear "nice" steps and logarithmic decades.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "plot/plot.h"

namespace fedtrain {

// ---------------------------------------------------------------------------------------
// Axes

std::vector<double> NiceTicks(double lo, double hi, int target, double min_step) {
  std::vector<double> ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) return ticks;
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  // The multiple of mag (1, 2, 5 or 10) nearest to `raw` on a log scale; the boundaries
  // are the geometric means of neighbours. Rounding up instead would halve the tick count
  // whenever `raw` lands just above a nice value.
  const double m = raw / mag;
  double step = 10 * mag;
  if (m < std::sqrt(2.0)) {
    step = mag;
  } else if (m < std::sqrt(10.0)) {
    step = 2 * mag;
  } else if (m < std::sqrt(50.0)) {
    step = 5 * mag;
  }
  step = std::max(step, min_step);
  // Tolerances of 1e-9 steps absorb rounding in lo/step so that a tick on the edge stays.
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0; i < 1000; ++i) {
    double v = (first + i) * step;
    if (v > hi + step * 1e-9) break;
    if (std::fabs(v) < step * 1e-9) v = 0;  // No "-0" or "1e-17" label.
    ticks.push_back(v);
  }
  return ticks;
}

std::vector<double> LogTicks(double lo, double hi, int level) {
  std::vector<double> ticks;
  if (!(lo > 0) || !std::isfinite(hi) || hi < lo || level < 0) return ticks;
  const int first = static_cast<int>(std::floor(std::log10(lo)));
  const int last = static_cast<int>(std::ceil(std::log10(hi)));
  const int stride = std::max(level, 1);
  for (int e = first; e <= last; ++e) {
    if (((e % stride) + stride) % stride != 0) continue;  // Decades that are multiples.
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1 && level != 0) break;
      // From a decimal literal, so that 1e-1 is the double nearest 0.1 and not 10^-1 with
      // pow's rounding.
      const double v = m * std::strtod(absl::StrCat("1e", e).c_str(), nullptr);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
    }
  }
  return ticks;
}

}  // namespace fedtrain
