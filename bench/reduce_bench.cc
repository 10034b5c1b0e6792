// reduce_bench: the server reduce kernel (aggregators/weighted_mean.h) against the memory
// bandwidth measured in the same run (docs/architecture.md "Performance model").
//
//   reduce_bench [--k=100] [--d=1000000] [--reps=5]
//
// Builds K deterministic updates of d floats, then times, best of --reps:
//   memcpy     copying all K*d*4 input bytes into one d-float destination (bytes read/s);
//   read only  reading the same bytes and nothing else (informational);
//   reduce t=1 WeightedMean on the calling thread;
//   reduce t=2 WeightedMean on a 2-thread pool;
// and prints input bytes/s, the ratio to memcpy and, as nccl-tests does, #wrong: the number
// of output floats that differ in any bit from a plain double loop in the same order.
// Exit status 1 when any result is wrong (2 on bad flags); the bandwidth target (reduce
// t=1 >= 0.8 x memcpy) is printed as PASS/FAIL but never fails the run, since it is a
// measurement on a shared, noisy machine. Single-threaded program apart from the pool.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "aggregators/weighted_mean.h"
#include "core/thread_pool.h"
#include "core/vec.h"

namespace fedtrain {
namespace {

using bench::BestSeconds;
using bench::Clock;
using bench::Seconds;
using bench::Verdict;

constexpr double kTargetRatio = 0.8;

struct Options {
  size_t k = 100;
  size_t d = 1000000;
  int reps = 5;
};

// Parses "--name=value" or "--name value" for a positive integer; false on anything else.
bool ParseFlags(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg, value;
    bench::SplitFlag(argc, argv, &i, &arg, &value);
    unsigned long long v = 0;
    if (!bench::PositiveInt("reduce_bench", arg, value, &v)) return false;
    if (arg == "--k") {
      opt->k = v;
    } else if (arg == "--d") {
      opt->d = v;
    } else if (arg == "--reps") {
      opt->reps = static_cast<int>(std::min<unsigned long long>(v, 1000000));
    } else {
      std::fprintf(stderr, "reduce_bench: unknown flag '%s' (known: --k --d --reps)\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

// Tells the compiler that memory may have been read and written here, so the K memcpy
// calls into one destination are not merged into the last one (dead-store elimination).
inline void ClobberMemory() { asm volatile("" : : : "memory"); }

// A float in [-1, 1) from (k, j) alone (splitmix64 finaliser): any run, any order, same data.
float Input(uint64_t k, uint64_t j) {
  uint64_t z = (k << 40) ^ j;
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 40) / (1ull << 23) - 1.0);
}


// Output floats whose bits differ from `ref`.
size_t CountWrong(const std::vector<float>& got, const std::vector<float>& ref) {
  size_t wrong = 0;
  for (size_t j = 0; j < ref.size(); ++j) {
    if (std::memcmp(&got[j], &ref[j], sizeof(float)) != 0) ++wrong;
  }
  return wrong;
}

int Run(const Options& opt) {
  const size_t k_count = opt.k, d = opt.d;
  std::vector<std::vector<float>> updates(k_count, std::vector<float>(d));
  std::vector<ConstVec> in;
  std::vector<double> w;
  double w_total = 0;
  for (size_t k = 0; k < k_count; ++k) {
    for (size_t j = 0; j < d; ++j) updates[k][j] = Input(k, j);
    in.emplace_back(updates[k]);
    w.push_back(1.0 + static_cast<double>(k % 7));  // uneven client weights
    w_total += w.back();
  }
  for (double& wk : w) wk /= w_total;

  // Reference: the plain loop of weighted_mean.h, coordinate by coordinate. The product goes
  // through a volatile so that no build flag can fuse it with the add (the kernel never
  // does), which keeps the comparison bitwise.
  std::vector<float> ref(d);
  for (size_t j = 0; j < d; ++j) {
    double acc = 0.0;
    for (size_t k = 0; k < k_count; ++k) {
      volatile double term = w[k] * static_cast<double>(updates[k][j]);
      acc += term;
    }
    ref[j] = static_cast<float>(acc);
  }

  const double bytes = static_cast<double>(k_count) * static_cast<double>(d) * sizeof(float);
  std::vector<float> copy_dst(d);
  const double t_copy = BestSeconds(opt.reps, [&] {
    for (size_t k = 0; k < k_count; ++k) {
      std::memcpy(copy_dst.data(), updates[k].data(), d * sizeof(float));
      ClobberMemory();
    }
  });

  // A second, informational baseline: only reading the same bytes (XOR of 64-bit words into
  // four register accumulators: two loads a cycle, far above the memory's speed). memcpy also
  // writes d floats per update, into a destination that stays in cache.
  // Each rep's XOR of every 8-byte word must equal the one computed word by word below: the
  // read pass is checked, not only kept alive.
  auto load = [](const char* p) {  // an unaligned 8-byte load without aliasing trouble
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  };
  uint64_t read_expect = 0;
  for (size_t k = 0; k < k_count; ++k) {
    const char* p = reinterpret_cast<const char*>(updates[k].data());
    for (size_t b = 0; b + 8 <= d * sizeof(float) / 32 * 32; b += 8) read_expect ^= load(p + b);
  }
  bool read_ok = true;
  const double t_read = BestSeconds(opt.reps, [&] {
    uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
    for (size_t k = 0; k < k_count; ++k) {
      const char* p = reinterpret_cast<const char*>(updates[k].data());
      const char* end = p + d * sizeof(float) / 32 * 32;
      for (; p != end; p += 32) {
        x0 ^= load(p);
        x1 ^= load(p + 8);
        x2 ^= load(p + 16);
        x3 ^= load(p + 24);
      }
    }
    read_ok &= (x0 ^ x1 ^ x2 ^ x3) == read_expect;
  });

  std::vector<float> out1(d), out2(d);
  bool failed = false;
  auto reduce = [&](std::vector<float>* out, ThreadPool* pool) {
    const absl::Status s = WeightedMean(in, w, absl::MakeSpan(*out), pool);
    if (!s.ok()) {
      std::fprintf(stderr, "reduce_bench: WeightedMean failed: %s\n", s.ToString().c_str());
      failed = true;
    }
  };
  const double t_reduce1 = BestSeconds(opt.reps, [&] { reduce(&out1, nullptr); });
  ThreadPool pool(2);
  const double t_reduce2 = BestSeconds(opt.reps, [&] { reduce(&out2, &pool); });

  const size_t wrong1 = CountWrong(out1, ref);
  const size_t wrong2 = CountWrong(out2, ref);
  const double bw_copy = bytes / t_copy;
  const double ratio1 = bytes / t_reduce1 / bw_copy;

  std::printf("# reduce_bench: K=%zu updates x d=%zu floats = %.1f MB input, best of %d\n",
              k_count, d, bytes / 1e6, opt.reps);
  std::printf("# %-12s %12s %12s %10s %8s\n", "what", "time(ms)", "GB/s", "x memcpy", "#wrong");
  std::printf("  %-12s %12.2f %12.2f %10.3f %8s\n", "memcpy", t_copy * 1e3, bw_copy / 1e9, 1.0,
              "-");
  std::printf("  %-12s %12.2f %12.2f %10.3f %8s\n", "read only", t_read * 1e3,
              bytes / t_read / 1e9, bytes / t_read / bw_copy, "-");
  std::printf("  %-12s %12.2f %12.2f %10.3f %8zu\n", "reduce t=1", t_reduce1 * 1e3,
              bytes / t_reduce1 / 1e9, ratio1, wrong1);
  std::printf("  %-12s %12.2f %12.2f %10.3f %8zu\n", "reduce t=2", t_reduce2 * 1e3,
              bytes / t_reduce2 / 1e9, bytes / t_reduce2 / bw_copy, wrong2);
  std::printf("# target reduce t=1 >= %.2f x memcpy: %s (%.3f)\n", kTargetRatio,
              ratio1 >= kTargetRatio ? "PASS" : "FAIL", ratio1);
  const bool wrong = failed || wrong1 != 0 || wrong2 != 0 || !read_ok;
  std::printf("# results: %s (read pass checksum %016llx: %s)\n",
              wrong ? "WRONG" : "OK, bit-identical to the reference",
              static_cast<unsigned long long>(read_expect), read_ok ? "matches" : "WRONG");
  return wrong ? 1 : 0;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  fedtrain::Options opt;
  if (!fedtrain::ParseFlags(argc, argv, &opt)) return 2;
  return fedtrain::Run(opt);
}
