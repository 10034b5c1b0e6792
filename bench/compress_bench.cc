// compress_bench: uplink compression kernels (docs/compression.md §1) against the memory
// bandwidth measured in the same run (docs/architecture.md "Performance model").
//
//   compress_bench [--d=10000000] [--table_d=1000000] [--reps=10]
//
// Input: d standard-normal floats from RngStream(seed 1, kTest). Every time is the best of
// --reps runs. Three parts:
//  (a) exact Top-K (TopKIndices) for k = 1% and 0.1% of d, against one memcpy of the input
//      (target: at most 5x its time) and against std::nth_element by |x| on a copy of the
//      same data (target: at least 5x faster; the copy is made outside the timed region and
//      nth_element returns no indices, so this baseline is the cheapest possible). The
//      result must equal the reference selection (nth_element over (|x_j|, j) with the tie
//      rule in the comparator, then sorted) exactly.
//  (b) QSGD (s = 15, b = 512) and scaled sign (b = 512) Encode + Decode through the
//      Compressor API: input bytes/s against memcpy bytes/s (target >= 0.3). Decode must
//      reproduce the `decoded` output of Encode bit for bit.
//  (c) encoded bits per coordinate at d = --table_d for each compressor and index encoding,
//      measured from Encoded::bytes (16-byte header included), next to
// Compressor::PayloadBits() / d (the docs/compression.md §1.8 formula, no header) and the formula
// as
//      computed here. Decode must reproduce `decoded` here too.
// A compressor that MakeCompressor does not know yet is reported as "not available yet".
// Exit status 1 when any result is wrong (2 on bad flags); speed targets are printed as
// PASS/FAIL but never fail the run, since they are measurements on a shared, noisy machine.
// Single-threaded.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compression/compressor.h"
#include "compression/topk_select.h"
#include "core/rng.h"
#include "core/vec.h"

namespace fedtrain {
namespace {

using bench::BestSeconds;
using bench::Clock;
using bench::Seconds;
using bench::Verdict;

constexpr double kTopKMaxMemcpyRatio = 5.0;  // Top-K time <= 5 x memcpy time
constexpr double kTopKMinSpeedup = 5.0;      // >= 5 x faster than std::nth_element
constexpr double kQuantizerMinRatio = 0.3;   // encode+decode bytes/s >= 0.3 x memcpy
constexpr uint64_t kSeed = 1;

struct Options {
  size_t d = 10000000;
  size_t table_d = 1000000;
  int reps = 10;
};

bool ParseFlags(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string arg, value;
    bench::SplitFlag(argc, argv, &i, &arg, &value);
    unsigned long long v = 0;
    if (!bench::PositiveInt("compress_bench", arg, value, &v)) return false;
    if (arg == "--d" && v < (1ull << 32)) {
      opt->d = v;
    } else if (arg == "--table_d" && v < (1ull << 32)) {
      opt->table_d = v;
    } else if (arg == "--reps") {
      opt->reps = static_cast<int>(std::min<unsigned long long>(v, 1000000));
    } else {
      std::fprintf(stderr,
                   "compress_bench: unknown flag or value '%s' (known: --d --table_d --reps; "
                   "d < 2^32)\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

// Memory may have been read and written here: keeps repeated copies from being elided.
inline void ClobberMemory() { asm volatile("" : : : "memory"); }



std::vector<float> NormalInput(size_t d) {
  RngStream rng = RngStream::For(kSeed, 0, 0, Purpose::kTest);
  std::vector<float> x(d);
  for (float& v : x) v = static_cast<float>(rng.Normal());
  return x;
}

// The reference selection: docs/compression.md §1.2 literally (nth_element on (|x_j|, j) with the tie rule
// in the comparator), then sorted ascending.
std::vector<uint32_t> ReferenceTopK(ConstVec x, size_t k) {
  std::vector<std::pair<float, uint32_t>> nz;
  for (size_t j = 0; j < x.size(); ++j)
    if (x[j] != 0) nz.emplace_back(std::fabs(x[j]), static_cast<uint32_t>(j));
  if (k < nz.size()) {
    std::nth_element(nz.begin(), nz.begin() + k, nz.end(),
                     [](const std::pair<float, uint32_t>& a, const std::pair<float, uint32_t>& b) {
                       return a.first > b.first || (a.first == b.first && a.second < b.second);
                     });
    nz.resize(k);
  }
  std::vector<uint32_t> idx;
  for (const auto& e : nz) idx.push_back(e.second);
  std::sort(idx.begin(), idx.end());
  return idx;
}


// (a) Returns false when a result is wrong.
bool RunTopK(const std::vector<float>& x, int reps, double t_copy) {
  const size_t d = x.size();
  bool all_right = true;
  std::printf("\n# (a) exact Top-K, d=%zu normal floats, best of %d\n", d, reps);
  std::printf("# %-22s %10s %10s %12s %8s\n", "what", "time(ms)", "x memcpy", "nth_el/this",
              "#wrong");
  for (size_t k : {d / 100, d / 1000}) {
    if (k == 0) continue;
    const double pct = 100.0 * static_cast<double>(k) / static_cast<double>(d);
    // Baseline: std::nth_element by |x| on a fresh copy (copy not timed).
    std::vector<float> scratch(d);
    double t_nth = std::numeric_limits<double>::infinity();
    for (int r = 0; r < reps; ++r) {
      std::memcpy(scratch.data(), x.data(), d * sizeof(float));
      const auto t0 = Clock::now();
      std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end(),
                       [](float a, float b) { return std::fabs(a) > std::fabs(b); });
      ClobberMemory();
      t_nth = std::min(t_nth, Seconds(t0, Clock::now()));
    }
    std::vector<uint32_t> ref;
    const double t_ref = BestSeconds(std::min(reps, 2), [&] { ref = ReferenceTopK(x, k); });

    std::vector<uint32_t> out;
    bool failed = false;
    const double t_topk = BestSeconds(reps, [&] {
      const absl::Status s = TopKIndices(ConstVec(x), k, &out);
      if (!s.ok()) {
        std::fprintf(stderr, "compress_bench: TopKIndices failed: %s\n", s.ToString().c_str());
        failed = true;
      }
    });
    size_t wrong = failed || out.size() != ref.size() ? std::max(ref.size(), size_t{1}) : 0;
    if (wrong == 0)
      for (size_t i = 0; i < ref.size(); ++i) wrong += out[i] != ref[i];
    all_right &= wrong == 0;

    char label[64];
    std::snprintf(label, sizeof label, "nth_element k=%.1f%%", pct);
    std::printf("  %-22s %10.2f %10.2f %12s %8s\n", label, t_nth * 1e3, t_nth / t_copy, "1.00",
                "-");
    std::snprintf(label, sizeof label, "reference k=%.1f%%", pct);
    std::printf("  %-22s %10.2f %10.2f %12.2f %8s\n", label, t_ref * 1e3, t_ref / t_copy,
                t_nth / t_ref, "-");
    std::snprintf(label, sizeof label, "TopKIndices k=%.1f%%", pct);
    std::printf("  %-22s %10.2f %10.2f %12.2f %8zu\n", label, t_topk * 1e3, t_topk / t_copy,
                t_nth / t_topk, wrong);
    std::printf("# target Top-K k=%zu (%.1f%%) time <= %.1f x memcpy: %s (%.2f)\n", k, pct,
                kTopKMaxMemcpyRatio, Verdict(t_topk / t_copy <= kTopKMaxMemcpyRatio),
                t_topk / t_copy);
    std::printf("# target Top-K k=%zu (%.1f%%) >= %.1f x faster than nth_element: %s (%.2f)\n",
                k, pct, kTopKMinSpeedup, Verdict(t_nth / t_topk >= kTopKMinSpeedup),
                t_nth / t_topk);
  }
  return all_right;
}

// Bits of `a` and `b` equal (NaN-safe, -0 != +0).
size_t CountBitDiffs(ConstVec a, ConstVec b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

// (b) Returns false when a result is wrong.
bool RunQuantizers(const std::vector<float>& x, int reps, double t_copy) {
  const size_t d = x.size();
  const double bytes = static_cast<double>(d) * sizeof(float);
  bool all_right = true;
  std::printf("\n# (b) quantizers, Encode then Decode, d=%zu, best of %d\n", d, reps);
  std::printf("# %-22s %10s %10s %10s %10s %8s\n", "what", "enc(ms)", "dec(ms)", "GB/s",
              "x memcpy", "#wrong");
  struct Case {
    const char* label;
    CompressorOptions o;
  };
  std::vector<Case> cases(2);
  cases[0].label = "qsgd s=15 b=512";
  cases[0].o.compressor = "qsgd";
  cases[0].o.levels = 15;
  cases[0].o.bucket = 512;
  cases[1].label = "sign b=512";
  cases[1].o.compressor = "sign";
  cases[1].o.bucket = 512;
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<Compressor>> made = MakeCompressor(c.o, d);
    if (!made.ok() || *made == nullptr) {
      std::printf("  %-22s not available yet (%s)\n", c.label,
                  made.ok() ? "no implementation" : made.status().ToString().c_str());
      continue;
    }
    const Compressor& comp = **made;
    // Two uplink paths: without error feedback the worker encodes only (no `decoded`); with
    // it, Encode also writes the dense decoded vector the feedback state needs.
    Encoded enc, enc_plain;
    std::vector<float> decoded(d), out(d);
    bool failed = false;
    const double inf = std::numeric_limits<double>::infinity();
    double t_enc = inf, t_dec = inf, t_both = inf, t_plain = inf;
    for (int r = 0; r < reps && !failed; ++r) {
      for (bool with_decoded : {false, true}) {
        RngStream rng = RngStream::For(kSeed, 0, 0, Purpose::kCompression);
        Encoded& e = with_decoded ? enc : enc_plain;
        const auto t0 = Clock::now();
        const absl::Status se = comp.Encode(ConstVec(x), rng, &e, with_decoded ? Vec(decoded) : Vec());
        const auto t1 = Clock::now();
        const absl::Status sd = comp.Decode(e, Vec(out));
        const auto t2 = Clock::now();
        if (!se.ok() || !sd.ok()) {
          std::fprintf(stderr, "compress_bench: %s: encode %s, decode %s\n", c.label,
                       se.ToString().c_str(), sd.ToString().c_str());
          failed = true;
          break;
        }
        if (with_decoded) {
          t_enc = std::min(t_enc, Seconds(t0, t1));
          t_dec = std::min(t_dec, Seconds(t1, t2));
          t_both = std::min(t_both, Seconds(t0, t2));
        } else {
          t_plain = std::min(t_plain, Seconds(t0, t2));
        }
      }
    }
    // Right: Decode reproduces `decoded` bit for bit, and both paths sent the same bytes.
    const size_t wrong =
        failed ? d : CountBitDiffs(decoded, out) + (enc.bytes == enc_plain.bytes ? 0 : 1);
    all_right &= wrong == 0;
    const double ratio = t_copy / t_both;  // (bytes / t_both) / (bytes / t_copy)
    const double ratio_plain = t_copy / t_plain;
    std::printf("  %-22s %10.2f %10.2f %10.2f %10.3f %8zu\n", c.label, t_enc * 1e3, t_dec * 1e3,
                bytes / t_both / 1e9, ratio, wrong);
    std::printf("  %-22s %21.2f %10.2f %10.3f %8s\n", (std::string(c.label) + " (no decoded)").c_str(),
                t_plain * 1e3, bytes / t_plain / 1e9, ratio_plain, "-");
    std::printf("# target %s encode+decode >= %.2f x memcpy bytes/s: %s (%.3f without feedback, "
                "%.3f with the decoded vector for error feedback)\n",
                c.label, kQuantizerMinRatio, Verdict(ratio_plain >= kQuantizerMinRatio),
                ratio_plain, ratio);
  }
  return all_right;
}

// Spec §1.8 payload bits for a configuration, computed here independently (no header).
double SpecBits(const CompressorOptions& o, size_t d) {
  const double dd = static_cast<double>(d);
  const double k = o.k != 0 ? static_cast<double>(o.k)
                            : std::max(1.0, std::round(o.k_fraction * dd));
  const double log2d = std::ceil(std::log2(dd));
  const std::string& c = o.compressor;
  if (c == "identity") return 32.0 * dd;
  if (c == "topk" || c == "randk" || c == "randk_scaled") {
    const std::string& e = o.index_encoding;
    if (e == "u32") return 64.0 * k;
    if (e == "bitmap") return dd + 32.0 * k;
    if (e == "seed") return 32.0 * k + 64.0;
    return k * (log2d + 32.0);  // packed; the bound for varint and auto
  }
  const double b = o.bucket == 0 ? dd : static_cast<double>(o.bucket);
  const double blocks = std::ceil(dd / b);
  if (c == "qsgd")
    return dd * (1.0 + std::ceil(std::log2(static_cast<double>(o.levels) + 1.0))) +
           32.0 * blocks;
  if (c == "sign") return dd + 32.0 * blocks;
  if (c == "natural") return 9.0 * dd;
  return std::nan("");
}

// (c) Returns false when a result is wrong.
bool RunTable(size_t d) {
  const std::vector<float> x = NormalInput(d);
  const double dd = static_cast<double>(d);
  bool all_right = true;
  std::printf("\n# (c) payload bits per coordinate, d=%zu normal floats\n", d);
  std::printf("# measured = 8 * Encoded::bytes.size() / d (16-byte header included: %.6f);\n",
              128.0 / dd);
  std::printf("# PayloadBits/d = the compressor's spec formula; spec = formula computed here\n");
  std::printf("# %-26s %12s %14s %12s %8s\n", "compressor", "measured", "PayloadBits/d", "spec",
              "#wrong");
  struct Row {
    std::string label;
    CompressorOptions o;
  };
  std::vector<Row> rows;
  auto add = [&rows](std::string label, std::string name) -> CompressorOptions& {
    rows.push_back({std::move(label), CompressorOptions{}});
    rows.back().o.compressor = std::move(name);
    return rows.back().o;
  };
  add("identity", "identity");
  for (const char* enc : {"packed", "u32", "varint", "bitmap", "auto"}) {
    CompressorOptions& o = add(std::string("topk 1% ") + enc, "topk");
    o.k_fraction = 0.01;
    o.index_encoding = enc;
  }
  {
    CompressorOptions& o = add("randk 1% seed", "randk");
    o.k_fraction = 0.01;
    o.index_encoding = "seed";
  }
  for (int64_t s : {1, 15}) {
    CompressorOptions& o = add("qsgd s=" + std::to_string(s) + " b=512", "qsgd");
    o.levels = s;
    o.bucket = 512;
  }
  add("sign b=512", "sign").bucket = 512;
  add("natural", "natural");

  for (const Row& row : rows) {
    absl::StatusOr<std::unique_ptr<Compressor>> made = MakeCompressor(row.o, d);
    if (!made.ok() || *made == nullptr) {
      std::printf("  %-26s not available yet (%s)\n", row.label.c_str(),
                  made.ok() ? "no implementation" : made.status().ToString().c_str());
      continue;
    }
    const Compressor& comp = **made;
    Encoded enc;
    std::vector<float> decoded(d), out(d);
    RngStream rng = RngStream::For(kSeed, 0, 0, Purpose::kCompression);
    const absl::Status se = comp.Encode(ConstVec(x), rng, &enc, Vec(decoded));
    const absl::Status sd = se.ok() ? comp.Decode(enc, Vec(out)) : se;
    size_t wrong = d;
    if (!se.ok() || !sd.ok()) {
      std::fprintf(stderr, "compress_bench: %s: encode %s, decode %s\n", row.label.c_str(),
                   se.ToString().c_str(), sd.ToString().c_str());
    } else {
      wrong = CountBitDiffs(decoded, out);
    }
    all_right &= wrong == 0;
    std::printf("  %-26s %12.4f %14.4f %12.4f %8zu\n", row.label.c_str(),
                8.0 * static_cast<double>(enc.bytes.size()) / dd,
                static_cast<double>(comp.PayloadBits()) / dd, SpecBits(row.o, d) / dd, wrong);
  }
  return all_right;
}

int Run(const Options& opt) {
  const size_t d = opt.d;
  const std::vector<float> x = NormalInput(d);
  const double bytes = static_cast<double>(d) * sizeof(float);
  std::vector<float> copy_dst(d);
  const double t_copy = BestSeconds(opt.reps, [&] {
    std::memcpy(copy_dst.data(), x.data(), d * sizeof(float));
    ClobberMemory();
  });
  std::printf("# compress_bench: d=%zu floats = %.1f MB input, best of %d\n", d, bytes / 1e6,
              opt.reps);
  std::printf("  %-22s %10.2f ms %10.2f GB/s\n", "memcpy", t_copy * 1e3, bytes / t_copy / 1e9);

  bool right = RunTopK(x, opt.reps, t_copy);
  right &= RunQuantizers(x, opt.reps, t_copy);
  right &= RunTable(opt.table_d);
  std::printf("\n# results: %s\n", right ? "OK, all checks exact" : "WRONG");
  return right ? 0 : 1;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  fedtrain::Options opt;
  if (!fedtrain::ParseFlags(argc, argv, &opt)) return 2;
  return fedtrain::Run(opt);
}
