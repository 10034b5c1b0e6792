// Plumbing shared by the bench/ programs: flag splitting, positive-integer values, timing,
// and the PASS/FAIL word. Header-only; each program keeps its own flags and goals.
#ifndef FEDTRAIN_BENCH_BENCH_UTIL_H_
#define FEDTRAIN_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace fedtrain::bench {

// Splits argv[*i] into its name and value: "--name=value", or "--name value" (then *i
// advances past the value). A flag without a value gets "".
inline void SplitFlag(int argc, char** argv, int* i, std::string* name, std::string* value) {
  *name = argv[*i];
  value->clear();
  const size_t eq = name->find('=');
  if (eq != std::string::npos) {
    *value = name->substr(eq + 1);
    name->resize(eq);
  } else if (*i + 1 < argc) {
    *value = argv[++*i];
  }
}

// The value as a positive integer, or false after a message naming the program and flag.
inline bool PositiveInt(const char* program, const std::string& name, const std::string& value,
                        unsigned long long* out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || value[0] == '-' || *end != '\0' || v == 0) {
    std::fprintf(stderr, "%s: %s needs a positive integer, got '%s'\n", program, name.c_str(),
                 value.c_str());
    return false;
  }
  *out = v;
  return true;
}

using Clock = std::chrono::steady_clock;
inline double Seconds(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double>(t1 - t0).count();
}

// Best wall time of `reps` calls of fn, in seconds.
template <typename Fn>
double BestSeconds(int reps, const Fn& fn) {
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, Seconds(t0, Clock::now()));
  }
  return best;
}

inline const char* Verdict(bool pass) { return pass ? "PASS" : "FAIL"; }

}  // namespace fedtrain::bench

#endif  // FEDTRAIN_BENCH_BENCH_UTIL_H_
