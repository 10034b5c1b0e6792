// The float64 kernels of the robust reducers (robust_kernels.h): the Gram and the linear
// combination give the same bits on every code path (baseline build, AVX2 with FMA), and
// those bits are the ones of the documented summation order, written out here as plain
// scalar loops. Sizes cover every tile shape (p = 1..17) and partial blocks.
#include <cmath>
#include <cstring>
#include <vector>

#include "aggregators/robust_kernels.h"
#include "core/rng.h"
#include "gtest/gtest.h"

namespace fedtrain {
namespace {

using Vecs = std::vector<std::vector<float>>;

// Values over many binades, both signs, some exact zeros: products and sums then round in
// many different ways, so a changed order would show.
Vecs RandomInputs(size_t p, size_t n, uint64_t seed) {
  RngStream rng = RngStream::For(seed, p, n, Purpose::kTest);
  Vecs x(p, std::vector<float>(n));
  for (auto& v : x)
    for (float& e : v) {
      const double u = rng.Uniform();
      e = u < 0.05 ? 0.0f
                   : static_cast<float>(rng.Normal() * std::ldexp(1.0, static_cast<int>(
                                                                           rng.UniformInt(40)) -
                                                                           20));
    }
  return x;
}

std::vector<ConstVec> Views(const Vecs& x) {
  std::vector<ConstVec> v;
  for (const auto& e : x) v.emplace_back(e);
  return v;
}

// The documented order of Gram(): per block of kGramBlock coordinates (zero padded), eight
// partial sums (partial u: coordinates t % 8 == u, increasing t, from 0.0), combined as
// ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)); block sums added in block order.
std::vector<double> ReferenceGram(const Vecs& x) {
  const size_t p = x.size(), n = x[0].size();
  std::vector<double> K(p * p, 0.0);
  for (size_t i = 0; i < p; ++i)
    for (size_t j = 0; j < p; ++j) {
      double total = 0.0;
      for (size_t k0 = 0; k0 < n; k0 += kGramBlock) {
        double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t t = 0; t < kGramBlock; ++t) {
          const double a = k0 + t < n ? x[i][k0 + t] : 0.0;
          const double b = k0 + t < n ? x[j][k0 + t] : 0.0;
          s[t % 8] = s[t % 8] + a * b;
        }
        total = total + (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
      }
      K[i * p + j] = total;
    }
  return K;
}

bool SameBits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

std::vector<KernelPath> Paths() {
  std::vector<KernelPath> paths = {KernelPath::kAuto, KernelPath::kBaseline};
  if (KernelPathAvailable(KernelPath::kAvx2)) paths.push_back(KernelPath::kAvx2);
  return paths;
}

TEST(RobustKernelsTest, GramHasTheDocumentedBitsOnEveryPath) {
  for (size_t p : {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17})
    for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{255}, size_t{256},
                     size_t{257}, size_t{1000}, 2 * kGramBlock + 3}) {
      const Vecs x = RandomInputs(p, n, 11);
      const std::vector<double> want = ReferenceGram(x);
      for (KernelPath path : Paths()) {
        std::vector<double> K;
        Gram(Views(x), &K, path);
        EXPECT_TRUE(SameBits(K, want)) << "p = " << p << ", n = " << n << ", path "
                                       << static_cast<int>(path);
      }
    }
}

TEST(RobustKernelsTest, GramBaselineAndAvx2AgreeOnALargeInput) {
  if (!KernelPathAvailable(KernelPath::kAvx2))
    GTEST_SKIP() << "this CPU has no AVX2 + FMA: only the baseline path exists";
  // Long enough for the prefetching of later blocks to take part.
  const Vecs x = RandomInputs(15, 50 * kGramBlock + 17, 12);
  std::vector<double> a, b;
  Gram(Views(x), &a, KernelPath::kBaseline);
  Gram(Views(x), &b, KernelPath::kAvx2);
  EXPECT_TRUE(SameBits(a, b));
}

TEST(RobustKernelsTest, GramIsCloseToTheExactInnerProducts) {
  // Guards the reference itself: a float64 sum of n = 1000 exact products is within
  // n * 2^-53 * sum |x_i x_j| of the exact value (standard summation bound; 1e-12 is above it).
  const Vecs x = RandomInputs(5, 1000, 13);
  std::vector<double> K;
  Gram(Views(x), &K);
  for (size_t i = 0; i < 5; ++i)
    for (size_t j = 0; j < 5; ++j) {
      long double exact = 0, mag = 0;
      for (size_t k = 0; k < 1000; ++k) {
        exact += static_cast<long double>(x[i][k]) * x[j][k];
        mag += std::fabs(static_cast<long double>(x[i][k]) * x[j][k]);
      }
      EXPECT_LE(std::fabs(static_cast<long double>(K[i * 5 + j]) - exact), 1e-12L * mag);
      EXPECT_EQ(K[i * 5 + j], K[j * 5 + i]);  // symmetric, bit for bit
    }
}

TEST(RobustKernelsTest, LinearCombinationHasTheDocumentedBitsOnEveryPath) {
  for (size_t p : {1, 2, 3, 15, 17})
    for (size_t n : {1, 15, 16, 17, 1000, 3000}) {
      const Vecs x = RandomInputs(p, n, 21);
      std::vector<double> c(p);
      RngStream rng = RngStream::For(22, p, n, Purpose::kTest);
      for (double& e : c) e = rng.Normal() / 3.0;
      // Per coordinate: from 0.0, add c_i * x_i (rounded product) in input order.
      std::vector<double> want(n);
      std::vector<float> want_f(n);
      for (size_t k = 0; k < n; ++k) {
        double s = 0.0;
        for (size_t i = 0; i < p; ++i) {
          const double prod = c[i] * static_cast<double>(x[i][k]);
          s = s + prod;
        }
        want[k] = s;
        want_f[k] = static_cast<float>(s);
      }
      for (KernelPath path : Paths()) {
        std::vector<double> got(n);
        std::vector<float> got_f(n);
        LinearCombination(Views(x), c, nullptr, got.data(), path);
        LinearCombination(Views(x), c, got_f.data(), nullptr, path);
        EXPECT_TRUE(SameBits(got, want)) << "p = " << p << ", n = " << n;
        EXPECT_EQ(std::memcmp(got_f.data(), want_f.data(), n * sizeof(float)), 0)
            << "p = " << p << ", n = " << n;
      }
    }
}

}  // namespace
}  // namespace fedtrain
