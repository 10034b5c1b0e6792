#include "core/rng.h"

#include <cmath>

#include <Random123/threefry.h>

#include "core/status_macros.h"

namespace fedtrain {

RngStream::RngStream(uint64_t seed, uint64_t round, uint64_t client, uint64_t purpose)
    : key_{seed, round, client, purpose} {}

uint64_t RngStream::NextU64() {
  if (used_ == 4) {
    r123::Threefry4x64 cbrng;
    r123::Threefry4x64::ctr_type ctr = {{counter_++, 0, 0, 0}};
    r123::Threefry4x64::key_type key = {{key_[0], key_[1], key_[2], key_[3]}};
    r123::Threefry4x64::ctr_type out = cbrng(ctr, key);
    for (int i = 0; i < 4; ++i) block_[i] = out[i];
    used_ = 0;
  }
  return block_[used_++];
}

double RngStream::Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

uint64_t RngStream::UniformInt(uint64_t n) {
  FT_CHECK(n > 0);
  // Reject the top partial range so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
  uint64_t x;
  do {
    x = NextU64();
  } while (x > limit);
  return x % n;
}

double RngStream::Normal() {
  if (has_normal_) {
    has_normal_ = false;
    return cached_normal_;
  }
  const double u1 = UniformPositive();
  const double u2 = Uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = 2.0 * M_PI * u2;
  cached_normal_ = r * std::sin(t);
  has_normal_ = true;
  return r * std::cos(t);
}

double RngStream::Gamma(double shape) {
  FT_CHECK(shape > 0);
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a).
    const double g = Gamma(shape + 1.0);
    return g * std::pow(UniformPositive(), 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = Normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = UniformPositive();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

}  // namespace fedtrain
