// The `augmented` data attack's image warp (docs/robust.md "Attacks"): the Lotka-Volterra
// flow used by the Flag Aggregator paper's "augmented data" workers. For an H x W image with
// centre (xm, ym) = (W/2, H/2), output pixel (r, c) starts the flow at (x, y) = (xm - r, ym - c),
// integrates dx/dt = a x - b x y, dy/dt = d x y - g y (a = 2/3, b = 4/3, g = 1, d = 1) from
// t = 0 to t = T with classical Runge-Kutta (200 steps), and reads source pixel
// (trunc(xm - x(T)), trunc(ym - y(T))) (truncation toward zero), or 0 outside the image. The map
// depends only on (H, W, T), so it is computed once per T and applied by gathering.
// The reference integrates adaptively; RK4 with 200 steps is the spec's recommended choice
// (its error on T <= 0.01 is far below a pixel). Pure functions; thread-safe.
#ifndef FEDTRAIN_ATTACKS_AUGMENT_H_
#define FEDTRAIN_ATTACKS_AUGMENT_H_

#include <cstdint>
#include <vector>

#include "core/vec.h"

namespace fedtrain {

// The ten warp lengths of the reference, T = 0.001, 0.002, ..., 0.010.
constexpr int kNumWarps = 10;
double WarpTime(int k);  // k in [0, kNumWarps)

// For each output pixel r * W + c, the source pixel index, or -1 (the output is 0 there).
std::vector<int32_t> LotkaVolterraMap(int height, int width, double t);

// out[p] = in[map[p]], or `fill` (a black pixel in the features' units) where map[p] < 0;
// out and in hold map.size() values (one channel) and must not overlap.
void ApplyWarp(const std::vector<int32_t>& map, float fill, const float* in, float* out);

}  // namespace fedtrain

#endif  // FEDTRAIN_ATTACKS_AUGMENT_H_
