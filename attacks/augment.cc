#include "attacks/augment.h"

#include <cmath>

namespace fedtrain {

double WarpTime(int k) { return 0.001 * (k + 1); }

std::vector<int32_t> LotkaVolterraMap(int height, int width, double t) {
  constexpr double a = 2.0 / 3.0, b = 4.0 / 3.0, g = 1.0, d = 1.0;
  constexpr int kSteps = 200;
  const double xm = width / 2.0, ym = height / 2.0, h = t / kSteps;
  auto fx = [&](double x, double y) { return a * x - b * x * y; };
  auto fy = [&](double x, double y) { return d * x * y - g * y; };
  std::vector<int32_t> map(static_cast<size_t>(height) * width, -1);
  for (int r = 0; r < height; ++r)
    for (int c = 0; c < width; ++c) {
      double x = xm - r, y = ym - c;
      for (int s = 0; s < kSteps; ++s) {
        const double k1x = fx(x, y), k1y = fy(x, y);
        const double k2x = fx(x + 0.5 * h * k1x, y + 0.5 * h * k1y);
        const double k2y = fy(x + 0.5 * h * k1x, y + 0.5 * h * k1y);
        const double k3x = fx(x + 0.5 * h * k2x, y + 0.5 * h * k2y);
        const double k3y = fy(x + 0.5 * h * k2x, y + 0.5 * h * k2y);
        const double k4x = fx(x + h * k3x, y + h * k3y), k4y = fy(x + h * k3x, y + h * k3y);
        x += h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
        y += h / 6.0 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y);
      }
      const double sr = std::trunc(xm - x), sc = std::trunc(ym - y);
      if (sr >= 0 && sr < height && sc >= 0 && sc < width)
        map[static_cast<size_t>(r) * width + c] = static_cast<int32_t>(sr) * width +
                                                  static_cast<int32_t>(sc);
    }
  return map;
}

void ApplyWarp(const std::vector<int32_t>& map, float fill, const float* in, float* out) {
  for (size_t p = 0; p < map.size(); ++p) out[p] = map[p] < 0 ? fill : in[map[p]];
}

}  // namespace fedtrain
