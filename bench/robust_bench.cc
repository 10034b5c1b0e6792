// Robust reducers against memory baselines measured in the same run, on the same
// (pre-faulted) buffers, single-threaded (docs/robust.md "Performance"):
//   * Flag Aggregator, p = 15, n = 10^6, m = 8, lambda = 0: time (goal <= 50 ms) and its ratio
//     to one read-only pass over the p input vectors (goal <= 3x); the share of the Gram.
//   * coordinate median and trimmed mean: input bytes/s against memcpy bytes/s (goal >= 0.25x).
//   * Krum, Multi-Krum, Bulyan: time and the share of it spent in the p x p Gram.
// Every result is checked (a wrong one exits 1; speed verdicts only print PASS/FAIL). The cost
// of first-touch page faults is measured and reported separately.
//   robust_bench [--p=15] [--n=1000000] [--reps=5]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "aggregators/bulyan_reducer.h"
#include "aggregators/flag_reducer.h"
#include "aggregators/krum_reducer.h"
#include "aggregators/median_reducer.h"
#include "aggregators/robust_kernels.h"
#include "aggregators/trimmed_mean_reducer.h"
#include "bench/bench_util.h"
#include "core/rng.h"

namespace fedtrain {
namespace {

// Best of `reps` in this thread's CPU time: the build machines are shared (load averages
// of several per core are common), and wall time would count other processes' slices. The
// baselines are timed the same way.
template <typename Fn>
double BestSeconds(int reps, const Fn& fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    fn();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    best = std::min(best, double(b.tv_sec - a.tv_sec) + 1e-9 * double(b.tv_nsec - a.tv_nsec));
  }
  return best;
}

int failures = 0;
void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("  WRONG: %s\n", what.c_str());
    ++failures;
  }
}

// Keeps the compiler from dropping a read pass.
volatile double sink;

double ReadPass(const std::vector<float>& buf) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const size_t n = buf.size() / 8 * 8;
  for (size_t k = 0; k < n; k += 8)
    for (int u = 0; u < 8; ++u) s[u] += buf[k + u];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

int Main(int argc, char** argv) {
  unsigned long long p = 15, n = 1000000, reps = 5;
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    bench::SplitFlag(argc, argv, &i, &name, &value);
    unsigned long long* dst = name == "--p" ? &p : name == "--n" ? &n : name == "--reps" ? &reps : nullptr;
    if (!dst) {
      std::fprintf(stderr, "robust_bench: unknown flag %s (--p, --n, --reps)\n", name.c_str());
      return 2;
    }
    if (!bench::PositiveInt("robust_bench", name, value, dst)) return 2;
  }
  const int r = static_cast<int>(reps);
  const double bytes = static_cast<double>(p) * static_cast<double>(n) * sizeof(float);
  std::printf("robust_bench: p = %llu, n = %llu, %.1f MB of inputs, best of %d, 1 thread, thread CPU time\n", p, n,
              bytes / 1e6, r);

  // Page faults, separately: first touch of a fresh buffer vs a second pass.
  {
    const size_t count = p * n;
    std::unique_ptr<float[]> fresh(new float[count]);
    const double first =
        BestSeconds(1, [&] { std::memset(fresh.get(), 1, count * sizeof(float)); });
    const double again = BestSeconds(r, [&] { std::memset(fresh.get(), 2, count * sizeof(float)); });
    sink = fresh[count / 2];
    std::printf("page faults: first touch %.1f ms, again %.1f ms (%.1f us per 4 KiB page)\n",
                first * 1e3, again * 1e3, (first - again) * 1e6 / (count * 4.0 / 4096));
  }

  // Inputs: one block, written once (pre-faulted); honest = base + noise, 3 outliers.
  std::vector<float> block(p * n);
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  std::vector<float> base(n);
  for (float& v : base) v = static_cast<float>(rng.Normal());
  for (size_t i = 0; i < p; ++i)
    for (size_t k = 0; k < n; ++k)
      block[i * n + k] = i < 3 ? static_cast<float>(rng.Uniform())
                               : base[k] + 0.3f * static_cast<float>(rng.Normal());
  std::vector<ConstVec> in;
  for (size_t i = 0; i < p; ++i) in.emplace_back(block.data() + i * n, n);
  const std::vector<double> w(p, 1.0 / static_cast<double>(p));
  std::vector<float> out(n, 0.0f), copy(p * n, 0.0f);  // pre-faulted

  const double t_read = BestSeconds(r, [&] { sink = ReadPass(block); });
  const double t_copy = BestSeconds(r, [&] { std::memcpy(copy.data(), block.data(), p * n * 4); });
  const double copy_bps = bytes / t_copy;
  std::printf("baselines: read pass %.2f ms (%.1f GB/s), memcpy %.2f ms (%.1f GB/s)\n",
              t_read * 1e3, bytes / t_read / 1e9, t_copy * 1e3, copy_bps / 1e9);
  std::vector<double> K;
  const double t_gram = BestSeconds(r, [&] { Gram(in, &K); });
  std::printf("float64 Gram (p x p): %.2f ms (%.2f x read pass)\n", t_gram * 1e3, t_gram / t_read);

  // Flag.
  {
    FlagOptions o;
    o.m = 8;
    FlagReducer flag(o);
    absl::Status st;
    const double t = BestSeconds(r, [&] { st = flag.Reduce(in, w, absl::MakeSpan(out), nullptr); });
    Check(st.ok(), "flag: " + std::string(st.message()));
    double norm2 = 0;
    bool finite = true;
    for (float v : out) {
      norm2 += double(v) * v;
      finite = finite && std::isfinite(v);
    }
    Check(finite && std::sqrt(norm2) <= double(p) / 8 + 1e-4, "flag: ||d|| <= p/m and finite");
    std::vector<float> again(n);
    Check(flag.Reduce(in, w, absl::MakeSpan(again), nullptr).ok() && again == out,
          "flag: deterministic");
    std::printf("flag (m = 8, lambda = 0): %.2f ms  %s (goal <= 50 ms); %.2f x read pass  %s "
                "(goal <= 3x); Gram share %.0f%%\n",
                t * 1e3, bench::Verdict(t <= 0.050), t / t_read, bench::Verdict(t / t_read <= 3),
                100 * t_gram / t);
    // The rest of Flag with the Gram given: p x p maths and the output pass sum_i c_i g_i.
    std::vector<float> rest_out(n);
    const double t_rest = BestSeconds(r, [&] {
      st = FlagAggregateInto(in, o, 0, &K, nullptr, absl::MakeSpan(rest_out), nullptr);
    });
    Check(st.ok() && rest_out == out, "flag with the Gram given: same output");
    std::printf("  flag without its Gram (p x p maths + output pass): %.2f ms (%.2f x read pass)\n",
                t_rest * 1e3, t_rest / t_read);
  }
  // Coordinate-wise rules.
  for (int rule = 0; rule < 2; ++rule) {
    RobustCommon c;
    c.f = 3;
    std::unique_ptr<Reducer> red;
    if (rule == 0) red = std::make_unique<MedianReducer>(MedianOptions{c});
    else red = std::make_unique<TrimmedMeanReducer>(TrimmedMeanOptions{c});
    absl::Status st;
    const double t = BestSeconds(r, [&] { st = red->Reduce(in, w, absl::MakeSpan(out), nullptr); });
    Check(st.ok(), red->name() + ": " + std::string(st.message()));
    // Check against a plain sort on a sample of coordinates.
    for (size_t k = 0; k < n; k += std::max<size_t>(1, n / 997)) {
      std::vector<float> col;
      for (size_t i = 0; i < p; ++i) col.push_back(in[i][k]);
      std::sort(col.begin(), col.end());
      double want;
      if (rule == 0) {
        want = p % 2 ? col[p / 2] : 0.5 * (double(col[p / 2 - 1]) + col[p / 2]);
      } else {
        double s = 0;
        for (size_t j = 3; j < p - 3; ++j) s += col[j];
        want = s / double(p - 6);
      }
      if (out[k] != static_cast<float>(want)) {
        Check(false, red->name() + ": coordinate " + std::to_string(k));
        break;
      }
    }
    const double ratio = (bytes / t) / copy_bps;
    std::printf("%s (f = 3): %.2f ms, %.2f GB/s of input = %.2f x memcpy  %s (goal >= 0.25x)\n",
                red->name().c_str(), t * 1e3, bytes / t / 1e9, ratio, bench::Verdict(ratio >= 0.25));
  }
  // Krum family.
  for (int rule = 0; rule < 3; ++rule) {
    RobustCommon c;
    c.f = 3;
    std::unique_ptr<Reducer> red;
    if (rule < 2) {
      KrumOptions o;
      o.common = c;
      o.multi = rule == 1;
      red = std::make_unique<KrumReducer>(o);
    } else {
      red = std::make_unique<BulyanReducer>(BulyanOptions{c});
    }
    absl::Status st;
    const double t = BestSeconds(r, [&] { st = red->Reduce(in, w, absl::MakeSpan(out), nullptr); });
    Check(st.ok(), red->name() + ": " + std::string(st.message()));
    if (rule == 0) {
      bool is_input = false;
      for (size_t i = 3; i < p; ++i) is_input = is_input || std::equal(out.begin(), out.end(), in[i].begin());
      Check(is_input, "krum: output is one of the honest inputs");
    }
    std::printf("%s (f = 3): %.2f ms; the p x p Gram is %.0f%% of it (%.2f x read pass)\n",
                red->name().c_str(), t * 1e3, 100 * t_gram / t, t / t_read);
  }
  if (failures) {
    std::printf("robust_bench: %d WRONG result(s)\n", failures);
    return 1;
  }
  std::printf("robust_bench: all results checked\n");
  return 0;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) { return fedtrain::Main(argc, argv); }
