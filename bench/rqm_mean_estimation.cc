// rqm_mean_estimation: the distributed mean estimation experiment of docs/privacy.md §6
// (V-RQM-2). |S| = 100 clients each hold x_i ~ U[-c, c]^d (d = 1000, c = 1) and send it
// through the rqm/1 compressor; the server averages the decodes. For every m in {2, 4, 8, 16},
// q in {0.3, 0.5, 0.7} and per-coordinate ε_1(α = 8) in {1, 2, 4}, Δ is calibrated by
// bisection so that ε_1(8) meets the target, and the empirical MSE of the mean (averaged over
// the coordinates and --reps independent repetitions of the mechanism) is compared with the
// prediction (1/|S|²) Σ_i Var(x_i) from the exact pmf. The local Gaussian baseline at the same
// ε_1(8) has per-coordinate σ² = 8 (2c)² / (2 ε), hence MSE σ² / |S| (computed, and measured
// with RngStream normals). PBM is not implemented in this version.
//
//   rqm_mean_estimation [--reps=20] [--csv=FILE]
//
// Prints a markdown table; exit 1 when an empirical MSE is not within 5% of its prediction
// (with 20 repetitions the standard error of the MSE estimate is about 1%).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "absl/strings/str_cat.h"
#include "compression/compressor.h"
#include "compression/privacy_accountant.h"
#include "compression/rqm.h"
#include "core/rng.h"

namespace fedtrain {
namespace {

constexpr int kClients = 100;
constexpr size_t kDim = 1000;
constexpr double kClip = 1.0;

double Eps8(double c, double delta, int64_t m, double q) {
  RqmOptions o{c, delta, m, q};
  const double a[] = {8.0};
  return RqmCoordinateRdp(RqmGrid(o), a)[0];
}

// Δ with ε_1(8) = target (decreasing in Δ; log-space bisection over [1e-3, 1e3] c).
double Calibrate(int64_t m, double q, double target) {
  double lo = 1e-3 * kClip, hi = 1e3 * kClip;
  if (Eps8(kClip, hi, m, q) > target) return NAN;
  for (int it = 0; it < 80; ++it) {
    const double mid = std::sqrt(lo * hi);
    (Eps8(kClip, mid, m, q) <= target ? hi : lo) = mid;
  }
  return hi;
}

}  // namespace
}  // namespace fedtrain

int main(int argc, char** argv) {
  using namespace fedtrain;  // NOLINT
  unsigned long long reps = 20;
  std::string csv_path;
  for (int i = 1; i < argc; ++i) {
    std::string name, value;
    bench::SplitFlag(argc, argv, &i, &name, &value);
    if (name == "--reps") {
      if (!bench::PositiveInt("rqm_mean_estimation", name, value, &reps)) return 2;
    } else if (name == "--csv") {
      csv_path = value;
    } else {
      std::fprintf(stderr, "rqm_mean_estimation: unknown flag %s\n", name.c_str());
      return 2;
    }
  }
  // The clients' data: fixed across repetitions (the mechanism's draws change).
  std::vector<std::vector<double>> x(kClients, std::vector<double>(kDim));
  std::vector<double> truth(kDim, 0.0);
  RngStream data = RngStream::For(1, 0, 0, Purpose::kTest);
  for (auto& xi : x)
    for (size_t j = 0; j < kDim; ++j) {
      xi[j] = kClip * (2 * data.Uniform() - 1);
      truth[j] += xi[j] / kClients;
    }
  std::string csv = "m,bits,q,eps1_alpha8,delta_over_c,mse_rqm,mse_predicted,ratio,mse_gauss_local,mse_gauss_measured\n";
  std::printf("| m | bits | q | ε₁(8) | Δ/c | RQM MSE | predicted | ratio | local Gaussian MSE (formula / measured) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  bool all_ok = true;
  for (int64_t m : {2, 4, 8, 16}) {
    for (double q : {0.3, 0.5, 0.7}) {
      for (double eps : {1.0, 2.0, 4.0}) {
        const double delta = Calibrate(m, q, eps);
        if (std::isnan(delta)) {
          std::printf("| %lld | | %.1f | %.0f | unreachable | | | | |\n", static_cast<long long>(m), q, eps);
          continue;
        }
        RqmOptions o{kClip, delta, m, q};
        const RqmGrid g(o);
        auto made = MakeRqmCompressor(o, kDim);
        if (!made.ok()) {
          std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
          return 1;
        }
        const Compressor& c = **made;
        // Prediction: (1/|S|²) Σ_i Var(x_ij), averaged over j.
        double predicted = 0;
        std::vector<double> p;
        for (int i = 0; i < kClients; ++i)
          for (size_t j = 0; j < kDim; ++j) {
            g.Pmf(x[i][j], &p);
            double s2 = 0;
            for (int64_t z = 0; z < m; ++z) s2 += p[static_cast<size_t>(z)] * g.Level(z) * g.Level(z);
            predicted += s2 - x[i][j] * x[i][j];
          }
        predicted /= static_cast<double>(kClients) * kClients * kDim;
        double mse = 0;
        std::vector<double> dec(kDim), mean(kDim);
        for (unsigned long long r = 0; r < reps; ++r) {
          std::fill(mean.begin(), mean.end(), 0.0);
          for (int i = 0; i < kClients; ++i) {
            RngStream rng = RngStream::For(7, r, static_cast<uint64_t>(i), Purpose::kCompression);
            Encoded e;
            if (!c.Encode(absl::MakeConstSpan(x[i]), rng, &e, absl::Span<double>()).ok() ||
                !c.Decode(e, absl::MakeSpan(dec)).ok())
              return 1;
            for (size_t j = 0; j < kDim; ++j) mean[j] += dec[j] / kClients;
          }
          for (size_t j = 0; j < kDim; ++j) mse += (mean[j] - truth[j]) * (mean[j] - truth[j]);
        }
        mse /= static_cast<double>(reps) * kDim;
        const double ratio = mse / predicted;
        const bool ok = std::fabs(ratio - 1) <= 0.05;
        all_ok &= ok;
        const double sigma2 = 8 * (2 * kClip) * (2 * kClip) / (2 * eps);
        const double gauss = sigma2 / kClients;
        double gauss_measured = 0;
        RngStream noise = RngStream::For(8, static_cast<uint64_t>(m), 0, Purpose::kPrivacy);
        for (unsigned long long r = 0; r < reps; ++r)
          for (size_t j = 0; j < kDim; ++j) {
            double s = 0;
            for (int i = 0; i < kClients; ++i) s += std::sqrt(sigma2) * noise.Normal();
            gauss_measured += (s / kClients) * (s / kClients);
          }
        gauss_measured /= static_cast<double>(reps) * kDim;
        const int bits = g.IndexBits();
        std::printf("| %lld | %d | %.1f | %.0f | %.4g | %.4g | %.4g | %.3f%s | %.4g / %.4g |\n",
                    static_cast<long long>(m), bits, q, eps, delta / kClip, mse, predicted, ratio,
                    ok ? "" : " (off by > 5%)", gauss, gauss_measured);
        absl::StrAppend(&csv, m, ",", bits, ",", q, ",", eps, ",", delta / kClip, ",", mse, ",",
                        predicted, ",", ratio, ",", gauss, ",", gauss_measured, "\n");
      }
    }
  }
  if (!csv_path.empty()) {
    std::FILE* f = std::fopen(csv_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "rqm_mean_estimation: cannot write %s\n", csv_path.c_str());
      return 1;
    }
    std::fputs(csv.c_str(), f);
    std::fclose(f);
  }
  std::printf("\nempirical MSE within 5%% of the prediction everywhere: %s\n", all_ok ? "yes" : "NO");
  return all_ok ? 0 : 1;
}
