#include "compression/compressor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <Random123/philox.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "core/vec.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

TEST(IdentityCompressorTest, RoundTripIsExact) {
  IdentityCompressor c;
  std::vector<float> x = {1.5f, -2.25f, 0.0f, 3e-38f};
  RngStream rng = RngStream::For(0, 0, 0, Purpose::kTest);
  Encoded e;
  std::vector<float> decoded(4), back(4);
  FT_ASSERT_OK(c.Encode(x, rng, &e, absl::MakeSpan(decoded)));
  EXPECT_EQ(e.codec, "identity/1");
  EXPECT_EQ(e.dim, 4u);
  EXPECT_EQ(e.bytes.size(), 16u);
  FT_ASSERT_OK(c.Decode(e, absl::MakeSpan(back)));
  EXPECT_EQ(back, x);
  EXPECT_EQ(decoded, x);
}

TEST(IdentityCompressorTest, DecodeRejectsBadInput) {
  IdentityCompressor c;
  RngStream rng = RngStream::For(0, 0, 0, Purpose::kTest);
  std::vector<float> x = {1, 2, 3};
  Encoded e;
  FT_ASSERT_OK(c.Encode(x, rng, &e, {}));
  std::vector<float> out(3), small(2);
  Encoded wrong = e;
  wrong.codec = "qsgd/1";
  EXPECT_THAT(c.Decode(wrong, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("qsgd/1")));
  EXPECT_THAT(c.Decode(e, absl::MakeSpan(small)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("3 floats; model has 2")));
  Encoded cut = e;
  cut.bytes.resize(7);
  EXPECT_THAT(c.Decode(cut, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("7 bytes")));
  std::vector<float> bad = {1, NAN, 3};
  FT_ASSERT_OK(c.Encode(bad, rng, &e, {}));
  EXPECT_THAT(c.Decode(e, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 1")));
}

// `bytes` as a Cord of pieces that reference it (so they are not merged), of sizes 1, 2, 3, ...
// bytes: most float boundaries fall inside a piece, some pieces lie inside a float.
absl::Cord Fragmented(const std::string& bytes) {
  absl::Cord c;
  for (size_t off = 0, n = 1; off < bytes.size(); off += n, ++n) {
    n = std::min(n, bytes.size() - off);
    c.Append(absl::MakeCordFromExternal(absl::string_view(bytes).substr(off, n),
                                        [](absl::string_view) {}));
  }
  return c;
}

size_t Pieces(const absl::Cord& c) {
  size_t n = 0;
  for (absl::string_view piece : c.Chunks()) n += piece.empty() ? 0 : 1;
  return n;
}

TEST(DecodeCordTest, IdentityDecodesPieceByPieceExactly) {
  IdentityCompressor c(1000);
  std::vector<float> x(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.37f - 99.0f;
  RngStream rng = RngStream::For(0, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(c.Encode(x, rng, &e, {}));
  const absl::Cord pieces = Fragmented(e.bytes);
  // Really in pieces (Cord copies the shortest ones together; the longer ones stay apart).
  ASSERT_GT(Pieces(pieces), 20u);
  std::vector<float> out(1000, -1.0f);
  FT_ASSERT_OK(c.DecodeCord(EncodedView(e.codec, e.dim, {}), pieces, absl::MakeSpan(out)));
  EXPECT_EQ(out, x);  // bitwise: the bytes are copied as they are
  // The same checks as Decode: byte count, codec, length, finiteness (naming the index).
  EXPECT_THAT(c.DecodeCord(EncodedView(e.codec, e.dim, {}), Fragmented(e.bytes.substr(1)),
                           absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("3999 bytes")));
  EXPECT_THAT(c.DecodeCord(EncodedView("qsgd/1", e.dim, {}), pieces, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("qsgd/1")));
  std::vector<float> small(999);
  EXPECT_THAT(c.DecodeCord(EncodedView(e.codec, e.dim, {}), pieces, absl::MakeSpan(small)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model has 999")));
  x[777] = std::nanf("");
  FT_ASSERT_OK(c.Encode(x, rng, &e, {}));
  EXPECT_THAT(c.DecodeCord(EncodedView(e.codec, e.dim, {}), Fragmented(e.bytes),
                           absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index 777")));
}

TEST(DecodeCordTest, EveryCompressorDecodesACordAsItsBytes) {
  const size_t d = 700;
  std::vector<float> x(d);
  for (size_t i = 0; i < d; ++i) x[i] = std::sin(static_cast<float>(i)) * 3.0f;
  for (const char* name : {"topk", "randk", "qsgd", "sign", "natural"}) {
    SCOPED_TRACE(name);
    CompressorOptions o;
    o.compressor = name;
    o.k = 50;
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Compressor> c, MakeCompressor(o, d));
    RngStream rng = RngStream::For(3, 1, 2, Purpose::kTest);
    Encoded e;
    FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
    std::vector<float> want(d), flat(d), pieces(d);
    FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(want)));
    const EncodedView header(e.codec, e.dim, {});
    FT_ASSERT_OK(c->DecodeCord(header, absl::Cord(e.bytes), absl::MakeSpan(flat)));
    FT_ASSERT_OK(c->DecodeCord(header, Fragmented(e.bytes), absl::MakeSpan(pieces)));
    EXPECT_EQ(flat, want);
    EXPECT_EQ(pieces, want);
    EXPECT_FALSE(c->DecodeCord(header, Fragmented(e.bytes.substr(0, e.bytes.size() - 1)),
                               absl::MakeSpan(pieces))
                     .ok());
  }
}

// CheckFinite scans in blocks (branch-free, then the flagged block element by element): the
// first non-finite value is named wherever it falls, and finite extremes pass.
template <typename T>
void CheckFiniteNamesTheFirstBadIndex() {
  const T inf = std::numeric_limits<T>::infinity();
  const T bads[] = {std::numeric_limits<T>::quiet_NaN(), inf, -inf};
  for (size_t n : {1, 4095, 4096, 4097, 10000}) {
    std::vector<T> v(n);
    const T extremes[] = {std::numeric_limits<T>::max(), std::numeric_limits<T>::lowest(),
                          std::numeric_limits<T>::denorm_min(), T(-0.0), T(1)};
    for (size_t i = 0; i < n; ++i) v[i] = extremes[i % 5];
    FT_EXPECT_OK(CheckFinite(absl::MakeConstSpan(v), "v"));
    for (size_t at : {size_t{0}, size_t{4095}, size_t{4096}, n - 1}) {
      if (at >= n) continue;
      for (T bad : bads) {
        std::vector<T> w = v;
        w[at] = bad;
        if (at + 1 < n) w[n - 1] = bad;  // a later one is not the one named
        EXPECT_THAT(CheckFinite(absl::MakeConstSpan(w), "v"),
                    StatusIs(absl::StatusCode::kInvalidArgument,
                             HasSubstr(absl::StrCat("at index ", at))))
            << n << " values, bad at " << at;
      }
    }
  }
}

TEST(CheckFiniteTest, NamesTheFirstBadIndexFloat) { CheckFiniteNamesTheFirstBadIndex<float>(); }
TEST(CheckFiniteTest, NamesTheFirstBadIndexDouble) { CheckFiniteNamesTheFirstBadIndex<double>(); }

TEST(CompressorFactoryTest, UnknownNameListsKnown) {
  CompressorOptions o;
  o.compressor = "zip";
  EXPECT_THAT(MakeCompressor(o, 10),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("known: identity")));
  o.compressor = "identity";
  FT_EXPECT_OK(MakeCompressor(o, 10));
}

// ---- helpers ---------------------------------------------------------------------------

using compression_internal::PhiloxBlockVariant;
using compression_internal::SampleRandK;

CompressorOptions Opts(const std::string& name, const std::string& value_type = "f32",
                       const std::string& encoding = "auto") {
  CompressorOptions o;
  o.compressor = name;
  o.value_type = value_type;
  o.index_encoding = encoding;
  return o;
}

std::unique_ptr<Compressor> Make(const CompressorOptions& o, size_t d) {
  auto c = MakeCompressor(o, d);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(c).value() : nullptr;
}

// Inputs exact in binary and independent of libm: multiples of 1/1024 in [-10, 10], with
// some exact zeros (so the same bytes come out on every platform: U-RNG).
std::vector<double> TestVector(size_t d, uint64_t seed, bool zeros = true) {
  RngStream rng = RngStream::For(seed, 0, 0, Purpose::kTest);
  std::vector<double> x(d);
  for (double& v : x) {
    v = (static_cast<double>(rng.UniformInt(20481)) - 10240.0) / 1024.0;
    if (zeros && rng.UniformInt(7) == 0) v = 0.0;
    if (!zeros && v == 0.0) v = 0.5;
  }
  return x;
}

std::vector<float> ToFloat(const std::vector<double>& x) {
  return std::vector<float>(x.begin(), x.end());
}

double SqNorm(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v * v;
  return s;
}

double SqDist(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

// C(x) through Encode's `decoded` (what Decode produces from the same bytes; U7 checks it).
std::vector<double> Apply(const Compressor& c, const std::vector<double>& x, RngStream& rng) {
  Encoded e;
  std::vector<double> out(x.size());
  const absl::Status s = c.Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(out));
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// ---- MakeCompressor and info() -----------------------------------------------------------

TEST(CompressorFactoryTest, ValidationNamesTheField) {
  using ::testing::HasSubstr;
  const auto bad = [](CompressorOptions o, size_t d, const std::string& field) {
    EXPECT_THAT(MakeCompressor(o, d), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr(field)))
        << o.compressor;
  };
  CompressorOptions o = Opts("topk");
  bad(o, 10, "compression.k");  // neither k nor k_fraction
  o.k = 11;
  bad(o, 10, "compression.k");
  o.k = -1;
  bad(o, 10, "compression.k");
  o = Opts("randk");
  o.k_fraction = 1.5;
  bad(o, 10, "compression.k_fraction");
  o.k_fraction = -0.1;
  bad(o, 10, "compression.k_fraction");
  o.k_fraction = 1.0;
  FT_EXPECT_OK(MakeCompressor(o, 10));
  o = Opts("qsgd");
  o.levels = 0;
  bad(o, 10, "compression.levels");
  o.levels = 65537;
  bad(o, 10, "compression.levels");
  o.levels = 65536;
  FT_EXPECT_OK(MakeCompressor(o, 10));
  o.bucket = 0;
  bad(o, 10, "compression.bucket");
  o = Opts("sign");
  o.bucket = -1;
  bad(o, 10, "compression.bucket");
  o.bucket = 0;
  FT_EXPECT_OK(MakeCompressor(o, 10));
  bad(Opts("topk", "f32", "zip"), 10, "compression.index_encoding");
  o = Opts("topk", "f32", "seed");
  o.k = 2;
  bad(o, 10, "compression.index_encoding");
  bad(Opts("qsgd", "f32", "seed"), 10, "compression.index_encoding");
  bad(Opts("qsgd", "f16"), 10, "compression.value_type");
  EXPECT_THAT(MakeCompressor(Opts("zip"), 10),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("identity, topk, randk, randk_scaled, qsgd, sign, natural")));
}

TEST(CompressorFactoryTest, KFromFraction) {
  CompressorOptions o = Opts("topk", "f32", "u32");
  o.k_fraction = 0.25;  // round(0.25 * 10) = 3 (2.5 rounds away from zero)
  auto c = Make(o, 10);
  EXPECT_EQ(c->PayloadBits(), 3u * 64);
  o.k_fraction = 0.001;  // max(1, round(0.01)) = 1
  EXPECT_EQ(Make(o, 10)->PayloadBits(), 64u);
  o.k = 4;  // k wins over k_fraction
  EXPECT_EQ(Make(o, 10)->PayloadBits(), 4u * 64);
}

TEST(CompressorInfoTest, MatchesSpecTable) {
  const size_t d = 1000;
  CompressorOptions o = Opts("topk");
  o.k = 10;
  CompressorInfo i = Make(o, d)->info();
  EXPECT_FALSE(i.unbiased);
  EXPECT_TRUE(i.positively_homogeneous);
  EXPECT_DOUBLE_EQ(i.delta, 0.01);
  o.compressor = "randk";
  EXPECT_DOUBLE_EQ(Make(o, d)->info().delta, 0.01);
  o.compressor = "randk_scaled";
  i = Make(o, d)->info();
  EXPECT_TRUE(i.unbiased);
  EXPECT_DOUBLE_EQ(i.omega, 99.0);
  o = Opts("qsgd");
  o.levels = 15;
  o.bucket = 512;
  i = Make(o, d)->info();
  EXPECT_TRUE(i.unbiased);
  EXPECT_TRUE(i.positively_homogeneous);
  EXPECT_DOUBLE_EQ(i.omega, std::min(512.0 / 225.0, std::sqrt(512.0) / 15.0));
  o = Opts("sign");
  o.bucket = 0;
  EXPECT_DOUBLE_EQ(Make(o, d)->info().delta, 1.0 / d);
  o.bucket = 100;
  EXPECT_DOUBLE_EQ(Make(o, d)->info().delta, 0.01);
  i = Make(Opts("natural"), d)->info();
  EXPECT_TRUE(i.unbiased);
  EXPECT_FALSE(i.positively_homogeneous);
  EXPECT_DOUBLE_EQ(i.omega, 0.125);
  i = Make(Opts("identity", "f64"), d)->info();
  EXPECT_EQ(i.delta, 1.0);
  EXPECT_EQ(i.omega, 0.0);
}

TEST(CompressorInfoTest, PayloadBitsFormulas) {
  const size_t d = 1000;  // B_i = ceil(log2 1000) = 10
  CompressorOptions o = Opts("topk", "f32", "packed");
  o.k = 10;
  EXPECT_EQ(Make(o, d)->PayloadBits(), 10u * (10 + 32));
  o.index_encoding = "auto";
  EXPECT_EQ(Make(o, d)->PayloadBits(), 10u * (10 + 32));
  o.index_encoding = "varint";
  EXPECT_EQ(Make(o, d)->PayloadBits(), 10u * (10 + 32));
  o.index_encoding = "u32";
  EXPECT_EQ(Make(o, d)->PayloadBits(), 10u * 64);
  o.index_encoding = "bitmap";
  EXPECT_EQ(Make(o, d)->PayloadBits(), 1000u + 10 * 32);
  o.value_type = "f64";
  EXPECT_EQ(Make(o, d)->PayloadBits(), 1000u + 10 * 64);
  o = Opts("randk", "f32", "seed");
  o.k = 10;
  EXPECT_EQ(Make(o, d)->PayloadBits(), 64u + 10 * 32);
  o = Opts("qsgd");
  o.levels = 15;
  o.bucket = 512;  // 2 buckets; 1 + 4 bits per coordinate
  EXPECT_EQ(Make(o, d)->PayloadBits(), 2u * 32 + 1000 * 5);
  o.levels = 1;  // 1 + 1 bits
  EXPECT_EQ(Make(o, d)->PayloadBits(), 2u * 32 + 1000 * 2);
  o = Opts("sign");
  o.bucket = 512;
  EXPECT_EQ(Make(o, d)->PayloadBits(), 2u * 32 + 1000);
  EXPECT_EQ(Make(Opts("natural"), d)->PayloadBits(), 9u * 1000);
  EXPECT_EQ(Make(Opts("identity", "f64"), d)->PayloadBits(), 64u * 1000);
}

// ---- U1 ----------------------------------------------------------------------------------

TEST(SpecU1, IdentityF64RoundTripIsBitExact) {
  std::vector<double> x = {1.0 / 3.0, -2.5e-300, 0.0, -0.0, 1e300, 4.9e-324};
  auto c = Make(Opts("identity", "f64"), x.size());
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  Encoded e;
  std::vector<double> dec(x.size()), back(x.size());
  FT_ASSERT_OK(c->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(dec)));
  EXPECT_EQ(e.codec, "identity_f64/1");
  EXPECT_EQ(e.bytes.size() * 8, c->PayloadBits());
  FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(back)));
  EXPECT_EQ(std::memcmp(back.data(), x.data(), x.size() * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(dec.data(), x.data(), x.size() * sizeof(double)), 0);
}

// ---- U2 ----------------------------------------------------------------------------------

TEST(SpecU2, TopKProperties) {
  const size_t d = 200;
  std::vector<double> x = TestVector(d, 11);
  x[5] = 100.0;  // the largest magnitudes, tied: -100 at 3, 100 at 5 and 9
  x[3] = -100.0;
  x[9] = 100.0;
  for (size_t k : {1, 2, 17, 150, 200}) {
    CompressorOptions o = Opts("topk", "f64");
    o.k = static_cast<int64_t>(k);
    auto c = Make(o, d);
    RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
    std::vector<double> y = Apply(*c, x, rng);
    size_t nnz_x = 0, nnz_y = 0;
    double kept_sq = 0, min_kept = INFINITY, max_dropped = 0;
    for (size_t j = 0; j < d; ++j) {
      nnz_x += x[j] != 0;
      if (y[j] != 0) {
        ++nnz_y;
        EXPECT_EQ(y[j], x[j]);
        kept_sq += x[j] * x[j];
        min_kept = std::min(min_kept, std::fabs(x[j]));
      } else {
        max_dropped = std::max(max_dropped, std::fabs(x[j]));
      }
    }
    EXPECT_EQ(nnz_y, std::min(k, nnz_x)) << k;
    EXPECT_GE(min_kept, max_dropped) << k;
    // Exact error identity; the bound with a relative slack of 1e-12 for the summation.
    EXPECT_NEAR(SqDist(y, x), SqNorm(x) - kept_sq, 1e-12 * SqNorm(x));
    EXPECT_LE(SqDist(y, x), (1 - static_cast<double>(k) / d) * SqNorm(x) * (1 + 1e-12));
    // Positive homogeneity: a = 3 keeps the order, and 3x is exact for these inputs.
    std::vector<double> x3(d);
    for (size_t j = 0; j < d; ++j) x3[j] = 3 * x[j];
    std::vector<double> y3 = Apply(*c, x3, rng);
    for (size_t j = 0; j < d; ++j) EXPECT_EQ(y3[j], 3 * y[j]);
  }
  // Ties go to the smaller index: k = 2 keeps -100 at 3 and 100 at 5, not 9.
  CompressorOptions o = Opts("topk", "f64");
  o.k = 2;
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  std::vector<double> y = Apply(*Make(o, d), x, rng);
  EXPECT_EQ(y[3], -100.0);
  EXPECT_EQ(y[5], 100.0);
  EXPECT_EQ(y[9], 0.0);
}

// ---- U3 ----------------------------------------------------------------------------------

TEST(SpecU3, RandKScaledIsUnbiasedWithExactVariance) {
  const size_t d = 10, k = 3, draws = 100000;
  const std::vector<double> x = TestVector(d, 12, /*zeros=*/false);
  CompressorOptions o = Opts("randk_scaled", "f64", "packed");
  o.k = k;
  auto c = Make(o, d);
  RngStream rng = RngStream::For(3, 0, 0, Purpose::kTest);
  std::vector<double> sum(d, 0.0);
  double err = 0;
  for (size_t t = 0; t < draws; ++t) {
    const std::vector<double> y = Apply(*c, x, rng);
    for (size_t j = 0; j < d; ++j) sum[j] += y[j];
    err += SqDist(y, x);
  }
  const double ratio = static_cast<double>(d) / k;
  for (size_t j = 0; j < d; ++j) {
    // Var C_j = (d/k - 1) x_j^2; 5 standard errors of the mean: a false alarm ~6e-7.
    const double se = std::sqrt((ratio - 1) * x[j] * x[j] / draws);
    EXPECT_NEAR(sum[j] / draws, x[j], 5 * se) << j;
  }
  // Spec tolerance 2% (the Monte-Carlo relative error here is ~0.5%).
  EXPECT_NEAR(err / draws, (ratio - 1) * SqNorm(x), 0.02 * (ratio - 1) * SqNorm(x));
}

TEST(SpecU3, RandKUnscaledErrorAndSharedSeed) {
  const size_t d = 10, k = 3, draws = 100000;
  const std::vector<double> x = TestVector(d, 13, /*zeros=*/false);
  CompressorOptions o = Opts("randk", "f64", "seed");
  o.k = k;
  auto c = Make(o, d);
  RngStream rng = RngStream::For(4, 0, 0, Purpose::kTest);
  double err = 0;
  for (size_t t = 0; t < draws; ++t) err += SqDist(Apply(*c, x, rng), x);
  const double want = (1 - static_cast<double>(k) / d) * SqNorm(x);
  EXPECT_NEAR(err / draws, want, 0.02 * want);  // spec tolerance 2%

  // Shared seed: the server regenerates the worker's index set from the 64-bit seed, and
  // gets the same set as the packed encoding with the same stream.
  o.index_encoding = "packed";
  auto packed = Make(o, 1000);
  o.index_encoding = "seed";
  auto seeded = Make(o, 1000);
  const std::vector<double> big = TestVector(1000, 14, /*zeros=*/false);
  for (int t = 0; t < 20; ++t) {
    RngStream r1 = RngStream::For(5, t, 0, Purpose::kCompression), r2 = r1;
    Encoded e1, e2;
    std::vector<double> y1(1000), y2(1000);
    FT_ASSERT_OK(packed->Encode(absl::MakeConstSpan(big), r1, &e1, {}));
    FT_ASSERT_OK(seeded->Encode(absl::MakeConstSpan(big), r2, &e2, {}));
    FT_ASSERT_OK(packed->Decode(e1, absl::MakeSpan(y1)));
    FT_ASSERT_OK(seeded->Decode(e2, absl::MakeSpan(y2)));
    EXPECT_EQ(y1, y2);
    EXPECT_EQ(e2.bytes.size(), 16u + 3 * 8 + 8);  // header, 3 doubles, the seed
  }
}

TEST(SpecU3, SamplerIsUniformOverSubsets) {
  // d = 5, k = 2: 10 subsets, each with probability 1/10 over 20000 draws. Binomial sd of a
  // count is sqrt(20000 * 0.1 * 0.9) = 42; 5 sd = 212.
  int counts[32] = {0};
  std::vector<uint32_t> idx;
  for (uint64_t s = 0; s < 20000; ++s) {
    SampleRandK(s, 5, 2, &idx);
    ASSERT_EQ(idx.size(), 2u);
    ASSERT_LT(idx[0], idx[1]);
    ++counts[(1 << idx[0]) | (1 << idx[1])];
  }
  int subsets = 0;
  for (int m = 0; m < 32; ++m) {
    if (counts[m] == 0) continue;
    ++subsets;
    EXPECT_NEAR(counts[m], 2000, 212) << m;
  }
  EXPECT_EQ(subsets, 10);
  // Both membership stores of Floyd's algorithm give the same set (large d uses a hash set).
  SampleRandK(99, 1u << 30, 5, &idx);
  EXPECT_EQ(idx.size(), 5u);
  EXPECT_TRUE(std::is_sorted(idx.begin(), idx.end()));
}

// ---- U4 ----------------------------------------------------------------------------------

TEST(SpecU4, QsgdLevelsZeroAndUnbiased) {
  const size_t d = 8, draws = 100000;
  const int s = 3;
  const size_t b = 4;  // two buckets
  CompressorOptions o = Opts("qsgd", "f64");
  o.levels = s;
  o.bucket = b;
  auto c = Make(o, d);
  const std::vector<double> x = {0.3, -1.2, 0.0, 2.0, 0.01, 0.5, -0.5, 0.25};
  double norm[2];
  for (int q = 0; q < 2; ++q)
    norm[q] = std::sqrt(SqNorm(std::vector<double>(x.begin() + 4 * q, x.begin() + 4 * q + 4)));
  // Levels: every output is N sign(x) l / s with integer l in [0, s].
  RngStream rng = RngStream::For(6, 0, 0, Purpose::kTest);
  std::vector<double> sum(d, 0.0), var(d), p(d);
  double err = 0, want_err = 0, bound = 0;
  for (size_t j = 0; j < d; ++j) {
    const double r = s * std::fabs(x[j]) / norm[j / b];
    p[j] = r - std::floor(r);
    var[j] = std::pow(norm[j / b] / s, 2) * p[j] * (1 - p[j]);
    want_err += var[j];
  }
  const double omega = std::min(double(b) / (s * s), std::sqrt(double(b)) / s);
  bound = omega * SqNorm(x);
  for (size_t t = 0; t < draws; ++t) {
    const std::vector<double> y = Apply(*c, x, rng);
    for (size_t j = 0; j < d; ++j) {
      const double l = y[j] * s / norm[j / b];
      if (t < 100) {  // the level check on the first draws (all draws: slow under ASan)
        // 1e-12: y = N l / s rounded once; l recovered to within a few ulps.
        EXPECT_NEAR(l, std::round(l), 1e-12);
        EXPECT_LE(std::fabs(std::round(l)), s);
        if (y[j] != 0) {
          EXPECT_EQ(std::signbit(y[j]), std::signbit(x[j]));
        }
      }
      sum[j] += y[j];
    }
    err += SqDist(y, x);
  }
  for (size_t j = 0; j < d; ++j) {
    // 5 standard errors, plus 1e-12 for coordinates with no variance (exact levels).
    EXPECT_NEAR(sum[j] / draws, x[j], 5 * std::sqrt(var[j] / draws) + 1e-12) << j;
  }
  EXPECT_NEAR(err / draws, want_err, 0.02 * want_err);  // spec tolerance 2%
  EXPECT_LE(want_err, bound);
  // Zero vector -> zero.
  std::vector<double> z(d, 0.0);
  EXPECT_EQ(Apply(*c, z, rng), z);
}

// ---- U5 ----------------------------------------------------------------------------------

TEST(SpecU5, ScaledSignErrorIdentity) {
  const size_t d = 1000;
  const std::vector<double> x = TestVector(d, 15);
  CompressorOptions o = Opts("sign", "f64");
  o.bucket = 0;
  RngStream rng = RngStream::For(7, 0, 0, Purpose::kTest);
  std::vector<double> y = Apply(*Make(o, d), x, rng);
  double l1 = 0;
  for (double v : x) l1 += std::fabs(v);
  const double want = SqNorm(x) - l1 * l1 / d;
  EXPECT_NEAR(SqDist(y, x), want, 1e-12 * want);  // spec: 1e-12 relative
  for (size_t j = 0; j < d; ++j) EXPECT_EQ(y[j] < 0, x[j] < 0) << j;  // sign(0) = +1
  // Blocks of 64: the error is the sum of the block errors.
  o.bucket = 64;
  y = Apply(*Make(o, d), x, rng);
  double want_b = 0;
  for (size_t j0 = 0; j0 < d; j0 += 64) {
    const size_t n = std::min<size_t>(64, d - j0);
    double bl1 = 0, bsq = 0;
    for (size_t j = j0; j < j0 + n; ++j) {
      bl1 += std::fabs(x[j]);
      bsq += x[j] * x[j];
    }
    want_b += bsq - bl1 * bl1 / n;
  }
  EXPECT_NEAR(SqDist(y, x), want_b, 1e-12 * want_b);
}

// ---- U6 ----------------------------------------------------------------------------------

bool IsPowerOfTwoOrZero(double v) {
  if (v == 0) return true;
  int e;
  return std::frexp(std::fabs(v), &e) == 0.5;
}

TEST(SpecU6, NaturalPowersOfTwoUnbiasedBounded) {
  const double tiny = 0x1p-130;  // below 2^-126: the subnormal range of the code
  const std::vector<double> x = {0.75, -3.0, 4.0, 0.0, -0x1p-126, 1.1, tiny, 0x1p127};
  const size_t d = x.size(), draws = 100000;
  auto c = Make(Opts("natural", "f64"), d);
  RngStream rng = RngStream::For(8, 0, 0, Purpose::kTest);
  std::vector<double> sum(d, 0.0), var(d);
  double want_err = 0;
  for (size_t j = 0; j < d; ++j) {
    const double a = std::fabs(x[j]);
    double lo = 0, hi = 0x1p-126;
    if (a >= 0x1p-126) {
      int e;
      std::frexp(a, &e);
      lo = std::ldexp(1.0, e - 1);
      hi = 2 * lo;
    }
    var[j] = a == 0 ? 0 : (hi - a) * (a - lo);  // two-point distribution on {lo, hi}
    want_err += var[j];
  }
  EXPECT_LE(want_err, SqNorm(x) / 8);  // ω = 1/8 (holds here; tiny's term is ~2^-256)
  double err = 0;
  for (size_t t = 0; t < draws; ++t) {
    const std::vector<double> y = Apply(*c, x, rng);
    for (size_t j = 0; j < d; ++j) {
      if (t < 100) {
        EXPECT_TRUE(IsPowerOfTwoOrZero(y[j])) << y[j];
        if (y[j] != 0) {
          EXPECT_EQ(std::signbit(y[j]), std::signbit(x[j]));
        }
      }
      sum[j] += y[j];
    }
    err += SqDist(y, x);
  }
  for (size_t j = 0; j < d; ++j) {
    if (var[j] == 0) {
      EXPECT_EQ(sum[j], x[j] * draws) << j;  // powers of two (and 0) are unchanged
    } else {
      // 5 standard errors (relative to the coordinate's own scale).
      EXPECT_NEAR(sum[j] / draws, x[j], 5 * std::sqrt(var[j] / draws)) << j;
    }
  }
  EXPECT_LE(err / draws, SqNorm(x) / 8);
  EXPECT_NEAR(err / draws, want_err, 0.02 * want_err);  // Monte-Carlo, ~0.3% here
}

TEST(SpecU6, NaturalRejectsOverflowAndNonFinite) {
  auto c = Make(Opts("natural"), 3);
  RngStream rng = RngStream::For(9, 0, 0, Purpose::kTest);
  Encoded e;
  std::vector<float> x = {1.0f, 3e38f, 0.0f};  // 3e38 > 2^127 could round up to 2^128
  EXPECT_THAT(c->Encode(x, rng, &e, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("index 1")));
  x = {1.0f, 0.0f, NAN};
  EXPECT_THAT(c->Encode(x, rng, &e, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("index 2")));
  x = {0x1p127f, -0x1p-149f, 0.0f};  // the largest code, the smallest subnormal: accepted
  std::vector<float> dec(3);
  FT_ASSERT_OK(c->Encode(x, rng, &e, absl::MakeSpan(dec)));
  EXPECT_EQ(dec[0], 0x1p127f);
  EXPECT_TRUE(dec[1] == 0.0f || dec[1] == -0x1p-126f);
}

TEST(SpecU6, NaturalFloatRoundingProbabilityIsExact) {
  // For float inputs p = M / 2^23 exactly (threshold M << 9 over 32-bit uniforms): x = 1.5
  // rounds up with probability exactly 1/2. 40000 draws: sd 100; 5 sd.
  auto c = Make(Opts("natural"), 1);
  RngStream rng = RngStream::For(10, 0, 0, Purpose::kTest);
  std::vector<float> x = {1.5f}, y(1);
  Encoded e;
  int up = 0;
  for (int t = 0; t < 40000; ++t) {
    FT_ASSERT_OK(c->Encode(x, rng, &e, absl::MakeSpan(y)));
    ASSERT_TRUE(y[0] == 1.0f || y[0] == 2.0f);
    up += y[0] == 2.0f;
  }
  EXPECT_NEAR(up, 20000, 500);
}

// ---- U7: every compressor, encoding and value type against an independent C(x) ----------

struct Config {
  std::string name, encoding, value_type;
  int64_t k = 0, levels = 15, bucket = 512;
};

std::vector<Config> AllConfigs() {
  std::vector<Config> out;
  for (const char* vt : {"f32", "f64"}) {
    out.push_back({"identity", "auto", vt});
    for (const char* name : {"topk", "randk", "randk_scaled"})
      for (const char* enc : {"auto", "packed", "u32", "varint", "bitmap", "seed"}) {
        if (std::string(enc) == "seed" && std::string(name) == "topk") continue;
        out.push_back({name, enc, vt, 17});
      }
    out.push_back({"qsgd", "auto", vt, 0, 15, 64});
    out.push_back({"qsgd", "auto", vt, 0, 1, 50});
    out.push_back({"qsgd", "auto", vt, 0, 255, 512});
    out.push_back({"qsgd", "auto", vt, 0, 65536, 7});
    out.push_back({"sign", "auto", vt, 0, 15, 0});
    out.push_back({"sign", "auto", vt, 0, 15, 33});
    out.push_back({"natural", "auto", vt});
  }
  return out;
}

CompressorOptions ToOptions(const Config& c) {
  CompressorOptions o = Opts(c.name, c.value_type, c.encoding);
  o.k = c.k;
  o.levels = c.levels;
  o.bucket = c.bucket;
  return o;
}

std::string Describe(const Config& c) {
  return absl::StrCat(c.name, " ", c.encoding, " ", c.value_type, " k=", c.k, " s=", c.levels,
                      " b=", c.bucket);
}

uint32_t PhiloxU(uint64_t key, size_t j) {
  uint32_t u[128];
  PhiloxBlockVariant(0, key, j / 128, u);  // Random123's scalar Philox4x32-10
  return u[j % 128];
}

// The spec's C(x), written out independently of the implementation (doubles; uniforms
// from Random123 directly), for the draw the implementation makes from `rng`.
template <typename T>
std::vector<double> Reference(const Config& cf, const std::vector<T>& x, RngStream rng,
                              const std::string& bytes) {
  const size_t d = x.size();
  const bool f64 = cf.value_type == "f64";
  const auto wire = [&](double v) { return f64 ? v : static_cast<double>(static_cast<float>(v)); };
  std::vector<double> y(d, 0.0);
  if (cf.name == "identity") {
    for (size_t j = 0; j < d; ++j) y[j] = wire(x[j]);
  } else if (cf.name == "topk") {
    std::vector<size_t> order(d);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::fabs(double(x[a])) > std::fabs(double(x[b]));
    });
    for (size_t i = 0; i < static_cast<size_t>(cf.k); ++i) y[order[i]] = wire(x[order[i]]);
  } else if (cf.name == "randk" || cf.name == "randk_scaled") {
    std::vector<uint32_t> idx;
    SampleRandK(rng.NextU64(), d, cf.k, &idx);
    const double scale = cf.name == "randk" ? 1.0 : double(d) / cf.k;
    for (uint32_t j : idx) y[j] = wire(double(x[j]) * scale);
  } else if (cf.name == "qsgd") {
    const uint64_t key = rng.NextU64();
    const size_t b = std::min<size_t>(cf.bucket, d);
    for (size_t q = 0; q * b < d; ++q) {
      // The norm as sent (the implementation sums in another order; checked to 1e-6).
      double n2 = 0;
      for (size_t j = q * b; j < std::min(d, q * b + b); ++j) n2 += double(x[j]) * x[j];
      const double norm = f64 ? LoadLE<double>(bytes.data() + 16 + 8 * q)
                              : LoadLE<float>(bytes.data() + 16 + 4 * q);
      EXPECT_NEAR(norm, std::sqrt(n2), 1e-6 * std::sqrt(n2));  // float32 rounding of N
      for (size_t j = q * b; j < std::min(d, q * b + b); ++j) {
        if (norm == 0) continue;
        const double r = std::fabs(double(x[j])) * cf.levels / norm;
        double l = std::min(std::floor(r), double(cf.levels));
        const double p = l < cf.levels ? r - l : 0.0;
        if (PhiloxU(key, j) < static_cast<uint32_t>(p * 4294967296.0)) l += 1;
        y[j] = (x[j] < 0 ? -1 : 1) * norm * l / cf.levels;
      }
    }
  } else if (cf.name == "sign") {
    const size_t b = cf.bucket == 0 ? d : std::min<size_t>(cf.bucket, d);
    for (size_t j0 = 0; j0 < d; j0 += b) {
      const size_t n = std::min(b, d - j0);
      double l1 = 0;
      for (size_t j = j0; j < j0 + n; ++j) l1 += std::fabs(double(x[j]));
      const double sc = wire(l1 / n);
      for (size_t j = j0; j < j0 + n; ++j) y[j] = x[j] < 0 ? -sc : sc;
    }
  } else if (cf.name == "natural") {
    const uint64_t key = rng.NextU64();
    for (size_t j = 0; j < d; ++j) {
      const double a = std::fabs(double(x[j]));
      if (a == 0) continue;
      int e;
      const double m = std::frexp(a, &e);
      double v = std::ldexp(1.0, e - 1);
      if (PhiloxU(key, j) < static_cast<uint32_t>((2 * m - 1) * 4294967296.0)) v *= 2;
      y[j] = x[j] < 0 ? -v : v;
    }
  }
  return y;
}

template <typename T>
void CheckWire(const Config& cf, size_t d) {
  SCOPED_TRACE(Describe(cf) + (sizeof(T) == 4 ? " float" : " double") + " d=" +
               std::to_string(d));
  auto c = Make(ToOptions(cf), d);
  ASSERT_NE(c, nullptr);
  std::vector<double> xd = TestVector(d, 16);
  std::vector<T> x(xd.begin(), xd.end());
  RngStream rng = RngStream::For(17, 2, 3, Purpose::kCompression);
  const RngStream before = rng;
  Encoded e;
  std::vector<T> dec(d), back(d, T{99});
  FT_ASSERT_OK(c->Encode(absl::MakeConstSpan(x), rng, &e, absl::MakeSpan(dec)));
  EXPECT_EQ(e.codec, cf.name == "identity" && cf.value_type == "f64" ? "identity_f64/1"
                                                                      : cf.name + "/1");
  EXPECT_EQ(e.dim, d);
  FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(back)));
  ASSERT_EQ(std::memcmp(dec.data(), back.data(), d * sizeof(T)), 0) << "decoded != Decode";
  const std::vector<double> ref = Reference(cf, x, before, e.bytes);
  for (size_t j = 0; j < d; ++j) {
    // sign: the reference sums |x| in another order (one rounding of the scale); else exact
    // up to the wire type's rounding of the decoded value into T.
    const double tol = cf.name == "sign" ? 1e-6 * std::fabs(ref[j]) : 0.0;
    ASSERT_NEAR(double(back[j]), double(static_cast<T>(ref[j])), tol) << "j=" << j;
  }
  // Payload size == PayloadBits() where it does not depend on the data.
  const bool fixed = cf.encoding != "auto" && cf.encoding != "varint";
  if (cf.name == "identity") {
    EXPECT_EQ(e.bytes.size() * 8, c->PayloadBits());
  } else if (cf.name == "topk" || cf.name == "randk" || cf.name == "randk_scaled") {
    // Top-K sends min(k, nnz) values; the test vector has more than k non-zeros.
    if (fixed) {
      EXPECT_EQ(e.bytes.size(), 16 + (c->PayloadBits() + 7) / 8);
    } else {
      EXPECT_LE(e.bytes.size(), 16 + (c->PayloadBits() + 7) / 8);
    }
  } else {
    EXPECT_EQ(e.bytes.size(), 16 + (c->PayloadBits() + 7) / 8);
  }
}

TEST(SpecU7, EveryCompressorEncodingAndValueType) {
  for (const Config& cf : AllConfigs())
    for (size_t d : {1000, 129}) {
      if (cf.k > static_cast<int64_t>(d)) continue;
      CheckWire<float>(cf, d);
      CheckWire<double>(cf, d);
    }
}

TEST(SpecU7, AutoPicksTheSmallestEncoding) {
  const size_t d = 4096;  // B_i = 12
  CompressorOptions o = Opts("topk", "f32", "auto");
  RngStream rng = RngStream::For(18, 0, 0, Purpose::kTest);
  Encoded e;
  std::vector<float> x(d, 0.0f);
  // 4 far-apart values: packed 4*12 bits = 6 bytes < varint (2-byte gaps: 8) < bitmap (512).
  o.k = 4;
  for (size_t j : {0, 1000, 2000, 3000}) x[j] = 1.0f + j;
  FT_ASSERT_OK(Make(o, d)->Encode(x, rng, &e, {}));
  EXPECT_EQ(e.bytes[1] & 0x0f, compression_internal::kEncPacked);
  // 100 adjacent values: varint 100 bytes < packed 150 < bitmap 512.
  o.k = 100;
  for (size_t j = 0; j < 100; ++j) x[j + 100] = 5000.0f + j;
  FT_ASSERT_OK(Make(o, d)->Encode(x, rng, &e, {}));
  EXPECT_EQ(e.bytes[1] & 0x0f, compression_internal::kEncVarint);
  // Everything: bitmap 512 < varint 4096 < packed 6144.
  o.k = d;
  for (size_t j = 0; j < d; ++j) x[j] = 1.0f + j;
  FT_ASSERT_OK(Make(o, d)->Encode(x, rng, &e, {}));
  EXPECT_EQ(e.bytes[1] & 0x0f, compression_internal::kEncBitmap);
  EXPECT_EQ(e.bytes.size(), 16 + 4 * d + d / 8);
}

TEST(SpecU7, TopKSendsOnlyNonZeros) {
  CompressorOptions o = Opts("topk", "f32", "u32");
  o.k = 5;
  auto c = Make(o, 10);
  std::vector<float> x(10, 0.0f), y(10);
  x[2] = -1.0f;
  x[7] = 2.0f;
  RngStream rng = RngStream::For(19, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
  EXPECT_EQ(e.bytes.size(), 16u + 2 * 8);
  FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(y)));
  EXPECT_EQ(y, x);
}

// ---- U-RNG: pinned message hashes --------------------------------------------------------

TEST(SpecURng, FixedSeedGivesPinnedBytes) {
  // FNV-1a of every message of AllConfigs() for the float and double inputs, folded into one
  // hash per compressor kind. A change means the wire bytes or the random draws changed:
  // bump the codec version instead of re-pinning.
  struct Pin {
    const char* name;
    uint64_t hash;
  };
  const Pin pins[] = {
      {"identity", 0x3d75aae4baf2b709ull}, {"topk", 0x1d7adb8713c5dc95ull},
      {"randk", 0xae0b77dced944885ull},    {"randk_scaled", 0x9309a769d0d47665ull},
      {"qsgd", 0x269ddd09b199cdb9ull},     {"sign", 0x3005d7bf986c9cc5ull},
      {"natural", 0xd69647511efea349ull},
  };
  for (const Pin& pin : pins) {
    uint64_t h = 14695981039346656037ull;
    for (const Config& cf : AllConfigs()) {
      if (cf.name != pin.name) continue;
      auto c = Make(ToOptions(cf), 300);
      const std::vector<double> xd = TestVector(300, 20);
      const std::vector<float> xf = ToFloat(xd);
      for (int typ = 0; typ < 2; ++typ) {
        RngStream rng = RngStream::For(21, 7, 9, Purpose::kCompression);
        Encoded e;
        if (typ == 0) {
          FT_ASSERT_OK(c->Encode(xf, rng, &e, {}));
        } else {
          FT_ASSERT_OK(c->Encode(absl::MakeConstSpan(xd), rng, &e, {}));
        }
        h = Fnv1a64(e.codec.data(), e.codec.size(), h);
        h = Fnv1a64(e.bytes.data(), e.bytes.size(), h);
      }
    }
    EXPECT_EQ(h, pin.hash) << pin.name << " hash is 0x" << std::hex << h;
  }
}

// Large vectors (>= 4 MiB of float output) take the AVX-512 kernels' streaming stores; the
// output span starts at every misalignment class used here. The baseline kernels
// (UseBaselineQuantizerKernels) must give the same bytes, `decoded` and Decode output, and
// Decode must reproduce `decoded` bit for bit, for float and double.
TEST(QuantizerKernelTest, BaselineAndSimdAgreeOnLargeVectors) {
  const size_t d = (size_t{1} << 20) + 37;  // a partial last block and bucket
  std::vector<float> xf(d);
  RngStream g = RngStream::For(5, 0, 0, Purpose::kTest);
  for (float& v : xf) v = static_cast<float>(g.Normal());
  xf[100] = 0.0f;
  std::fill(xf.begin() + 4096, xf.begin() + 4096 + 512, 0.0f);  // a zero bucket
  const std::vector<double> xd(xf.begin(), xf.end());
  struct Case {
    const char* compressor;
    int64_t levels, bucket;
  };
  const Case cases[] = {{"qsgd", 15, 512}, {"qsgd", 7, 256}, {"qsgd", 1, 128},
                        {"qsgd", 255, 512}, {"qsgd", 3, 200}, {"sign", 0, 512},
                        {"sign", 0, 200}};
  const auto same_bits = [](const float* a, const float* b, size_t n) {
    return std::memcmp(a, b, n * sizeof(float)) == 0;
  };
  for (const Case& cs : cases) {
    CompressorOptions o;
    o.compressor = cs.compressor;
    if (cs.levels > 0) o.levels = cs.levels;
    o.bucket = cs.bucket;
    auto made = MakeCompressor(o, d);
    FT_ASSERT_OK(made.status());
    const Compressor& c = **made;
    const std::string what = absl::StrCat(cs.compressor, " s=", cs.levels, " b=", cs.bucket);
    Encoded ref;
    std::vector<float> ref_dec;
    for (int run = 0; run < 4; ++run) {
      const bool baseline = run % 2 == 1;
      const size_t shift = static_cast<size_t>(run) * 5;  // 0, 5, 10, 15 floats
      compression_internal::UseBaselineQuantizerKernels(baseline);
      std::vector<float> dec_buf(d + 16), out_buf(d + 16), plain_out(d + 16);
      Vec dec(dec_buf.data() + shift, d), out(out_buf.data() + (15 - shift), d);
      RngStream rng = RngStream::For(3, 1, 2, Purpose::kCompression);
      Encoded e, plain;
      FT_ASSERT_OK(c.Encode(ConstVec(xf), rng, &e, dec));
      RngStream rng2 = RngStream::For(3, 1, 2, Purpose::kCompression);
      plain.bytes.assign(e.bytes.size(), '\xa5');  // a reused buffer holding garbage
      FT_ASSERT_OK(c.Encode(ConstVec(xf), rng2, &plain, Vec()));
      FT_ASSERT_OK(c.Decode(e, out));
      FT_ASSERT_OK(c.Decode(e, Vec(plain_out.data() + shift, d)));
      EXPECT_EQ(e.bytes, plain.bytes) << what;
      EXPECT_TRUE(same_bits(dec.data(), out.data(), d)) << what << " run " << run;
      EXPECT_TRUE(same_bits(out.data(), plain_out.data() + shift, d)) << what;
      // Streaming stores stay inside the span.
      for (size_t i = 0; i < shift; ++i) EXPECT_EQ(dec_buf[i], 0.0f) << what;
      for (size_t i = shift + d; i < d + 16; ++i) EXPECT_EQ(dec_buf[i], 0.0f) << what;
      if (run == 0) {
        ref = e;
        ref_dec.assign(dec.begin(), dec.end());
      } else {
        EXPECT_EQ(e.bytes, ref.bytes) << what << " run " << run;
        EXPECT_TRUE(same_bits(dec.data(), ref_dec.data(), d)) << what << " run " << run;
      }
      // The double path: the same bytes; values equal as doubles of the float ones.
      if (run < 2) {
        std::vector<double> dd(d), od(d);
        RngStream rng3 = RngStream::For(3, 1, 2, Purpose::kCompression);
        Encoded ed;
        FT_ASSERT_OK(c.Encode(absl::MakeConstSpan(xd), rng3, &ed, absl::MakeSpan(dd)));
        FT_ASSERT_OK(c.Decode(ed, absl::MakeSpan(od)));
        EXPECT_EQ(ed.bytes, ref.bytes) << what;
        EXPECT_EQ(std::memcmp(dd.data(), od.data(), d * sizeof(double)), 0) << what;
      }
    }
    compression_internal::UseBaselineQuantizerKernels(false);
  }
}

// The fused AVX-512 QSGD encoder (Philox, quantization and packing in registers; codes of at
// most 8 bits, buckets of whole 128-blocks) and the VBMI decoder (codes of at most 5 bits)
// against the baseline kernels on small and odd shapes: every level count up to 8 bits,
// partial last blocks, outputs too small to stream, the message's last bytes (the encoder's
// 8-byte stores must stay inside), coordinates at r = s exactly, signed zeros, tiny values and
// buckets whose norm overflows the float factor s/N (the double fallback). Same bytes,
// `decoded` and Decode output in both modes.
TEST(QuantizerKernelTest, FusedQsgdMatchesBaselineOnEdgeShapes) {
  const int64_t levels[] = {1, 3, 7, 15, 31, 63, 127, 255};
  const int64_t buckets[] = {128, 256, 512, 200};
  const size_t dims[] = {1, 127, 128, 129, 384, 1000, 4096 + 77};
  for (int64_t s : levels)
    for (int64_t b : buckets)
      for (size_t d : dims) {
        RngStream g = RngStream::For(11, static_cast<uint64_t>(s), d, Purpose::kTest);
        std::vector<float> x(d);
        for (float& v : x) v = static_cast<float>(g.Normal());
        if (d > 130) {
          x[3] = -0.0f;
          x[5] = 1e-30f;
          x[6] = -1e-38f;
        }
        // A bucket with one non-zero coordinate: r = s exactly there.
        if (d >= 1000)
          for (size_t j = 512; j < 768; ++j) x[j] = j == 600 ? -2.5f : 0.0f;
        // A bucket of tiny values: s/N overflows float (the double path for the message).
        if (d == 4096 + 77 && s == 15 && b == 512)
          for (size_t j = 1024; j < 1536; ++j) x[j] = (j % 3 == 0 ? -1e-42f : 2e-43f);
        CompressorOptions o;
        o.compressor = "qsgd";
        o.levels = s;
        o.bucket = b;
        auto made = MakeCompressor(o, d);
        FT_ASSERT_OK(made.status());
        const Compressor& c = **made;
        const std::string what = absl::StrCat("s=", s, " b=", b, " d=", d);
        std::string bytes[2];
        std::vector<float> dec[2], out[2];
        for (int baseline = 0; baseline < 2; ++baseline) {
          compression_internal::UseBaselineQuantizerKernels(baseline == 1);
          RngStream rng = RngStream::For(4, 2, 1, Purpose::kCompression);
          Encoded e, plain;
          dec[baseline].assign(d, 0.0f);
          out[baseline].assign(d, 1.0f);
          FT_ASSERT_OK(c.Encode(ConstVec(x), rng, &e, Vec(dec[baseline])));
          RngStream rng2 = RngStream::For(4, 2, 1, Purpose::kCompression);
          plain.bytes.assign(e.bytes.size(), '\xff');  // a reused buffer holding garbage
          FT_ASSERT_OK(c.Encode(ConstVec(x), rng2, &plain, Vec()));
          EXPECT_EQ(e.bytes, plain.bytes) << what;
          FT_ASSERT_OK(c.Decode(e, Vec(out[baseline])));
          EXPECT_EQ(std::memcmp(dec[baseline].data(), out[baseline].data(), d * sizeof(float)), 0)
              << what;
          bytes[baseline] = e.bytes;
        }
        compression_internal::UseBaselineQuantizerKernels(false);
        EXPECT_EQ(bytes[0], bytes[1]) << what;
        EXPECT_EQ(std::memcmp(dec[0].data(), dec[1].data(), d * sizeof(float)), 0) << what;
      }
}

// Decode rejects an invalid code (a sign with level 0) in the VBMI decoder too,
// wherever they sit (a full 16-code group or the tail).
TEST(QuantizerKernelTest, QsgdDecodeRejectsBadCodesInEveryKernel) {
  const size_t d = 1000;
  for (int64_t s : {3, 7, 15}) {
    CompressorOptions o;
    o.compressor = "qsgd";
    o.levels = s;
    o.bucket = 128;
    auto made = MakeCompressor(o, d);
    FT_ASSERT_OK(made.status());
    const Compressor& c = **made;
    std::vector<float> x(d, 0.5f), out(d);
    RngStream rng = RngStream::For(1, 1, 1, Purpose::kCompression);
    Encoded e;
    FT_ASSERT_OK(c.Encode(ConstVec(x), rng, &e, Vec()));
    const int w = 1 + (s == 3 ? 2 : s == 7 ? 3 : 4);
    const size_t codes_at = compression_internal::kHeaderBytes + 4 * ((d + 127) / 128);
    for (size_t j : {size_t{0}, size_t{17}, size_t{500}, d - 1}) {
      {
        const uint32_t bad = 1;  // a sign with level 0 (every level of these s is valid)
        for (int baseline = 0; baseline < 2; ++baseline) {
          compression_internal::UseBaselineQuantizerKernels(baseline == 1);
          std::vector<uint8_t> raw(e.bytes.begin(), e.bytes.end());
          for (int k = 0; k < w; ++k) {
            const size_t bit = j * w + k;
            const size_t at = codes_at + bit / 8;
            ASSERT_LT(at, raw.size());
            raw[at] = static_cast<uint8_t>((raw[at] & ~(1u << (bit % 8))) |
                                           (((bad >> k) & 1u) << (bit % 8)));
          }
          Encoded m = e;
          m.bytes.assign(raw.begin(), raw.end());
          EXPECT_THAT(c.Decode(m, Vec(out)), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a level")))
              << "s=" << s << " j=" << j << " code " << bad << " baseline " << baseline;
        }
      }
    }
    compression_internal::UseBaselineQuantizerKernels(false);
  }
}

TEST(PhiloxTest, EverySimdVariantMatchesRandom123) {
  r123::Philox4x32 g;
  for (uint64_t key : {0ull, 0x0123456789abcdefull, ~0ull})
    for (uint64_t block : {0ull, 1ull, 77ull, (1ull << 27) + 5, (1ull << 40) + 3}) {
      uint32_t want[128];
      for (uint64_t i = 0; i < 32; ++i) {
        const uint64_t ctr = block * 32 + i;
        r123::Philox4x32::ctr_type c = {
            {static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0, 0}};
        r123::Philox4x32::key_type k = {
            {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)}};
        const auto r = g(c, k);
        for (int w = 0; w < 4; ++w) want[32 * w + i] = r.v[w];
      }
      for (int v = 0; v < 4; ++v) {
        uint32_t got[128];
        PhiloxBlockVariant(v, key, block, got);
        EXPECT_EQ(std::memcmp(got, want, sizeof(want)), 0) << "variant " << v;
      }
      uint32_t got[128];
      compression_internal::PhiloxBlock(key, block, got);
      EXPECT_EQ(std::memcmp(got, want, sizeof(want)), 0);
    }
}

}  // namespace
}  // namespace fedtrain
