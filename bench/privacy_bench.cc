// privacy_bench: the RQM quantizer against the memory bandwidth measured in the same run, and
// the cost of the privacy accountant (docs/privacy.md).
//
//   privacy_bench [--d=10000000] [--acc_d=1000000] [--rounds=1000] [--reps=5]
//
//  (a) RQM (m = 8, q = 0.5, c = 1, Δ = 1) Encode + Decode of d float32 coordinates (uniform
//      in [-1.5, 1.5], so a sixth of them are clipped) through the Compressor API, against one
//      memcpy of the input; every buffer is written once before any timing (first touch of a
//      page costs ~12 us here). Target: input bytes/s of encode + decode >= 0.3 x memcpy
//      bytes/s. Checked: Decode reproduces Encode's `decoded` output bit for bit, the same
//      bytes come out with and without `decoded`, every value is a level B(i), and the mean of
//      decoded - clip(x) is within 5 standard errors of 0 (unbiased; the standard error from
//      the §1.3 bound Var <= X² - x²).
//  (b) the accountant for a model of --acc_d coordinates after --rounds rounds over the full
//      default order grid: untrusted server (RQM composed over d and the rounds) and trusted
//      aggregator with K-of-N amplification (rate 0.01; the SubRDP bound needs the RQM RDP at
//      every integer order up to 256). Target: each under 1 s. Checked: both results equal
//      the (ε, δ) conversion of the composition computed here from RqmCoordinateRdp
//      (rounds x d x ε_1(α); rounds x SubRDP of d x ε_1). At d = 10^6 the per-message ε is in
//      the millions and sampling cannot amplify it: the amplified figure is no smaller.
// Exit status 1 when a result is wrong (2 on bad flags); speed targets print PASS/FAIL but
// never fail the run (a shared, noisy machine). Single-threaded.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "absl/status/statusor.h"
#include "compression/compressor.h"
#include "compression/privacy_accountant.h"
#include "compression/rqm.h"
#include "core/rng.h"

namespace fedtrain {
namespace {

using bench::BestSeconds;
using bench::Clock;
using bench::Seconds;
using bench::Verdict;

constexpr double kMinMemcpyRatio = 0.3;
constexpr double kMaxAccountantSeconds = 1.0;

bool RunRqm(size_t d, int reps) {
  std::vector<float> x(d), copy(d), decoded(d), out(d);
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  for (size_t j = 0; j < d; ++j) x[j] = static_cast<float>(3.0 * rng.Uniform() - 1.5);
  // Pre-fault every buffer.
  std::memset(copy.data(), 0, d * sizeof(float));
  std::memset(decoded.data(), 0, d * sizeof(float));
  std::memset(out.data(), 0, d * sizeof(float));
  const double t_copy = BestSeconds(reps, [&] { std::memcpy(copy.data(), x.data(), d * sizeof(float)); });
  if (std::memcmp(copy.data(), x.data(), d * sizeof(float)) != 0) {
    std::fprintf(stderr, "privacy_bench: memcpy copy differs\n");
    return false;
  }
  RqmOptions o;
  o.clip = 1.0;
  o.delta = 1.0;
  o.levels = 8;
  o.keep = 0.5;
  absl::StatusOr<std::unique_ptr<Compressor>> made = MakeRqmCompressor(o, d);
  if (!made.ok()) {
    std::fprintf(stderr, "privacy_bench: %s\n", made.status().ToString().c_str());
    return false;
  }
  const Compressor& c = **made;
  Encoded enc, enc_dec;
  {  // untimed: grows (pre-faults) the message buffers and gives the reference `decoded`
    RngStream r = RngStream::For(1, 0, 0, Purpose::kCompression);
    if (!c.Encode(ConstVec(x), r, &enc_dec, Vec(decoded)).ok()) return false;
    RngStream r2 = RngStream::For(1, 0, 0, Purpose::kCompression);
    if (!c.Encode(ConstVec(x), r2, &enc, Vec()).ok()) return false;
  }
  double t_enc = 1e300, t_dec = 1e300;
  bool ok = true;
  for (int rep = 0; rep < reps; ++rep) {
    RngStream r = RngStream::For(1, 0, 0, Purpose::kCompression);
    const auto t0 = Clock::now();
    ok &= c.Encode(ConstVec(x), r, &enc, Vec()).ok();
    const auto t1 = Clock::now();
    ok &= c.Decode(enc, Vec(out)).ok();
    const auto t2 = Clock::now();
    t_enc = std::min(t_enc, Seconds(t0, t1));
    t_dec = std::min(t_dec, Seconds(t1, t2));
  }
  if (!ok) {
    std::fprintf(stderr, "privacy_bench: rqm encode or decode failed\n");
    return false;
  }
  // Checks.
  size_t wrong = enc.bytes == enc_dec.bytes ? 0 : 1;
  for (size_t j = 0; j < d; ++j) wrong += std::memcmp(&out[j], &decoded[j], sizeof(float)) != 0;
  const RqmGrid g(o);
  std::vector<float> levels;
  for (int64_t i = 0; i < g.m(); ++i) levels.push_back(static_cast<float>(g.Level(i)));
  size_t off_grid = 0;
  double err = 0, var_bound = 0;
  for (size_t j = 0; j < d; ++j) {
    bool on = false;
    for (float l : levels) on |= out[j] == l;
    off_grid += !on;
    const double xc = std::min(1.0, std::max(-1.0, static_cast<double>(x[j])));
    err += static_cast<double>(out[j]) - xc;
    var_bound += g.X() * g.X() - xc * xc;
  }
  // Float levels differ from the double ones by < 1e-7 relative: bias at most 2.4e-7 per
  // coordinate, added to the 5 standard errors.
  const double mean_err = err / static_cast<double>(d);
  const double se = std::sqrt(var_bound) / static_cast<double>(d);
  const bool unbiased = std::fabs(mean_err) <= 5 * se + 2.4e-7;
  const double bytes = static_cast<double>(d) * sizeof(float);
  const double ratio = t_copy / (t_enc + t_dec);
  std::printf("# (a) RQM m=8 q=0.5 c=1 delta=1, d=%zu, best of %d\n", d, reps);
  std::printf("  %-10s %10.2f ms %10.2f GB/s\n", "memcpy", t_copy * 1e3, bytes / t_copy / 1e9);
  std::printf("  %-10s %10.2f ms\n", "encode", t_enc * 1e3);
  std::printf("  %-10s %10.2f ms\n", "decode", t_dec * 1e3);
  std::printf("  %-10s %10.2f ms %10.2f GB/s  %.3f x memcpy\n", "enc+dec", (t_enc + t_dec) * 1e3,
              bytes / (t_enc + t_dec) / 1e9, ratio);
  std::printf("  checks: %zu decode mismatches, %zu off-grid values, mean error %.3g "
              "(5 SE = %.3g): %s\n",
              wrong, off_grid, mean_err, 5 * se, (wrong == 0 && off_grid == 0 && unbiased) ? "ok" : "WRONG");
  std::printf("# target RQM encode+decode >= %.2f x memcpy bytes/s: %s (%.3f)\n", kMinMemcpyRatio,
              Verdict(ratio >= kMinMemcpyRatio), ratio);
  return wrong == 0 && off_grid == 0 && unbiased;
}

bool RunAccountant(uint64_t d, uint64_t rounds) {
  AccountantOptions o;
  o.rqm.clip = 1.0;
  o.rqm.delta = 1.0;
  o.rqm.levels = 8;
  o.rqm.keep = 0.5;
  o.dim = d;
  std::printf("\n# (b) accountant, d=%llu, %llu rounds, %zu orders\n",
              static_cast<unsigned long long>(d), static_cast<unsigned long long>(rounds),
              o.orders.size());
  bool ok = true;
  DpGuarantee plain{}, amp{};
  const auto t0 = Clock::now();
  absl::StatusOr<PrivacyAccountant> a = PrivacyAccountant::Create(o);
  if (a.ok()) plain = a->After(rounds, rounds);
  const double t_plain = Seconds(t0, Clock::now());
  AccountantOptions oa = o;
  oa.guarantee = PrivacyGuarantee::kTrustedAggregator;
  oa.amplification = oa.secret_sampling = true;
  oa.rate = 0.01;
  const auto t1 = Clock::now();
  absl::StatusOr<PrivacyAccountant> b = PrivacyAccountant::Create(oa);
  if (b.ok()) amp = b->After(rounds, 0);
  const double t_amp = Seconds(t1, Clock::now());
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "privacy_bench: accountant: %s %s\n", a.status().ToString().c_str(),
                 b.status().ToString().c_str());
    return false;
  }
  // Reference: rounds x d x ε_1(α), converted.
  std::vector<double> total = RqmCoordinateRdp(RqmGrid(o.rqm), o.orders);
  for (double& v : total) v *= static_cast<double>(rounds) * static_cast<double>(d);
  const double want = RdpToDp(o.orders, total, o.delta).epsilon;
  ok &= std::fabs(plain.epsilon - want) <= 1e-12 * want;
  // Amplified: rounds x SubRDP(γ, α) of the per-message RDP at every integer order, here.
  std::vector<double> ints;
  for (int j = 2; j <= 256; ++j) ints.push_back(j);
  std::vector<double> per_int = RqmCoordinateRdp(RqmGrid(o.rqm), ints);
  std::vector<double> amp_total;
  for (double a : o.orders) {
    const double r = SubsampledRdp(oa.rate, a, [&](int j) {
      return static_cast<double>(d) * per_int[static_cast<size_t>(j - 2)];
    });
    amp_total.push_back(static_cast<double>(rounds) * r);
  }
  const double want_amp = RdpToDp(o.orders, amp_total, o.delta).epsilon;
  ok &= std::isfinite(amp.epsilon) && std::fabs(amp.epsilon - want_amp) <= 1e-12 * want_amp;
  std::printf("  untrusted server:          epsilon %.6g (delta %g, order %g)  %.3f ms\n",
              plain.epsilon, plain.delta, plain.order, t_plain * 1e3);
  std::printf("  trusted + K-of-N (0.01):   epsilon %.6g (delta %g, order %g)  %.3f ms\n",
              amp.epsilon, amp.delta, amp.order, t_amp * 1e3);
  std::printf("  checks: %s\n", ok ? "ok" : "WRONG");
  std::printf("# target accountant < %.0f s: %s (%.3f s untrusted, %.3f s amplified)\n",
              kMaxAccountantSeconds,
              Verdict(t_plain < kMaxAccountantSeconds && t_amp < kMaxAccountantSeconds), t_plain,
              t_amp);
  return ok;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  unsigned long long d = 10000000, acc_d = 1000000, rounds = 1000, reps = 5;
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    fedtrain::bench::SplitFlag(argc, argv, &i, &name, &value);
    unsigned long long* target = name == "--d"        ? &d
                                 : name == "--acc_d"  ? &acc_d
                                 : name == "--rounds" ? &rounds
                                 : name == "--reps"   ? &reps
                                                      : nullptr;
    if (target == nullptr) {
      std::fprintf(stderr, "privacy_bench: unknown flag %s\n", name.c_str());
      return 2;
    }
    if (!fedtrain::bench::PositiveInt("privacy_bench", name, value, target)) return 2;
  }
  bool ok = fedtrain::RunRqm(static_cast<size_t>(d), static_cast<int>(reps));
  ok &= fedtrain::RunAccountant(acc_d, rounds);
  return ok ? 0 : 1;
}
