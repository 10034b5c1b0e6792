// Wire-level tests of the compressor codecs (docs/compression.md §1.7): bit packing, varints,
// header layout, and Decode's validation of malformed and corrupted messages (the server
// decodes untrusted bytes: every corruption must give a Status, never a crash or an
// out-of-bounds read; this suite also runs under ASan+UBSan).
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor.h"
#include "compression/compressor_internal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;
using compression_internal::kHeaderBytes;

// ---- bit_io ------------------------------------------------------------------------------

TEST(BitIoTest, WriterReaderRoundTripLsbFirst) {
  std::string s;
  BitWriter w(&s);
  w.Put(1, 1);
  w.Put(0, 1);
  w.Put(0x5, 3);    // bits 2..4
  w.Put(0x1ff, 9);  // bits 5..13
  w.Put(0xdeadbeef, 32);
  w.Finish();
  ASSERT_EQ(s.size(), 6u);  // 46 bits
  EXPECT_EQ(static_cast<uint8_t>(s[0]), 0x1 | (0x5 << 2) | (0x7 << 5));
  BitReader r(s.data(), s.size());
  uint32_t v;
  ASSERT_TRUE(r.Get(1, &v));
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(r.Get(1, &v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(r.Get(3, &v));
  EXPECT_EQ(v, 5u);
  ASSERT_TRUE(r.Get(9, &v));
  EXPECT_EQ(v, 0x1ffu);
  ASSERT_TRUE(r.Get(32, &v));
  EXPECT_EQ(v, 0xdeadbeefu);
  EXPECT_TRUE(r.RestIsZero());
  EXPECT_FALSE(r.Get(3, &v));  // only 2 padding bits left
}

TEST(BitIoTest, PackUnpackEveryWidth) {
  for (int width = 1; width <= 32; ++width)
    for (size_t n : {0, 1, 7, 8, 9, 64, 131}) {
      std::vector<uint32_t> codes(n), back(n);
      uint64_t state = 88172645463325252ull;
      for (auto& c : codes) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        c = static_cast<uint32_t>(state) & static_cast<uint32_t>((uint64_t{1} << width) - 1);
      }
      const size_t bytes = (n * width + 7) / 8;
      std::string buf(bytes, '\xff');
      PackBits(codes.data(), n, width, buf.data());
      // Same bytes as the reference bit writer (padding zero).
      std::string ref;
      BitWriter w(&ref);
      for (uint32_t c : codes) w.Put(c, width);
      w.Finish();
      EXPECT_EQ(buf, ref) << "width " << width << " n " << n;
      UnpackBits(buf.data(), n, width, back.data());
      EXPECT_EQ(back, codes) << "width " << width << " n " << n;
    }
}

TEST(BitIoTest, Varint) {
  for (uint32_t v : {0u, 1u, 127u, 128u, 300u, 16383u, 16384u, 0xffffffffu}) {
    std::string s;
    PutVarint32(&s, v);
    EXPECT_EQ(static_cast<int>(s.size()), Varint32Size(v));
    const char* p = s.data();
    uint32_t got;
    ASSERT_TRUE(GetVarint32(&p, s.data() + s.size(), &got));
    EXPECT_EQ(got, v);
    EXPECT_EQ(p, s.data() + s.size());
    // Truncated.
    p = s.data();
    EXPECT_FALSE(GetVarint32(&p, s.data() + s.size() - 1, &got));
  }
  const std::string overlong = "\x80\x80\x80\x80\x80\x01";
  const std::string too_big = "\xff\xff\xff\xff\x1f";  // 2^35 - 1
  const char* p = overlong.data();
  uint32_t got;
  EXPECT_FALSE(GetVarint32(&p, overlong.data() + overlong.size(), &got));
  p = too_big.data();
  EXPECT_FALSE(GetVarint32(&p, too_big.data() + too_big.size(), &got));
  EXPECT_EQ(CeilLog2(1), 0);
  EXPECT_EQ(CeilLog2(2), 1);
  EXPECT_EQ(CeilLog2(1000), 10);
  EXPECT_EQ(CeilLog2(1024), 10);
  EXPECT_EQ(CeilLog2(1025), 11);
}

// ---- header and payload layout -----------------------------------------------------------

CompressorOptions Opts(const std::string& name, const std::string& enc = "auto",
                       const std::string& vt = "f32", int64_t k = 0, int64_t levels = 15,
                       int64_t bucket = 512) {
  CompressorOptions o;
  o.compressor = name;
  o.index_encoding = enc;
  o.value_type = vt;
  o.k = k;
  o.levels = levels;
  o.bucket = bucket;
  return o;
}

std::unique_ptr<Compressor> Make(const CompressorOptions& o, size_t d) {
  auto c = MakeCompressor(o, d);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(c).value() : nullptr;
}

TEST(CodecLayoutTest, SparseHeaderAndPackedIndices) {
  auto c = Make(Opts("topk", "packed", "f32", 2), 10);  // B_i = 4
  std::vector<float> x = {0, 0, 0, 5, 0, 0, 0, 0, 0, -6};
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
  ASSERT_EQ(e.bytes.size(), kHeaderBytes + 8 + 1);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(e.bytes.data());
  EXPECT_EQ(b[0], 2);     // kind topk
  EXPECT_EQ(b[1], 0x01);  // packed, f32
  EXPECT_EQ(b[2] | b[3], 0);
  EXPECT_EQ(LoadLE<uint32_t>(e.bytes.data() + 4), 10u);  // d
  EXPECT_EQ(LoadLE<uint32_t>(e.bytes.data() + 8), 2u);   // k
  EXPECT_EQ(LoadLE<uint32_t>(e.bytes.data() + 12), 2u);  // n
  EXPECT_EQ(LoadLE<float>(e.bytes.data() + 16), 5.0f);
  EXPECT_EQ(LoadLE<float>(e.bytes.data() + 20), -6.0f);
  EXPECT_EQ(b[24], 3 | (9 << 4));  // indices 3 and 9, 4 bits each, LSB first
}

TEST(CodecLayoutTest, SignBitsAndScale) {
  auto c = Make(Opts("sign", "auto", "f32", 0, 15, 0), 9);
  std::vector<float> x = {-1, 1, 0, 2, 2, 2, 2, 2, -4};  // l1 = 16, scale 16/9
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  Encoded e;
  std::vector<float> y(9);
  FT_ASSERT_OK(c->Encode(x, rng, &e, absl::MakeSpan(y)));
  ASSERT_EQ(e.bytes.size(), kHeaderBytes + 4 + 2);
  EXPECT_EQ(static_cast<uint8_t>(e.bytes[0]), 6);
  EXPECT_EQ(LoadLE<uint32_t>(e.bytes.data() + 8), 9u);  // block = d
  EXPECT_EQ(LoadLE<float>(e.bytes.data() + 16), 16.0f / 9.0f);
  EXPECT_EQ(static_cast<uint8_t>(e.bytes[20]), 0x01);  // sign(0) = +1
  EXPECT_EQ(static_cast<uint8_t>(e.bytes[21]), 0x01);
  EXPECT_EQ(y[2], 16.0f / 9.0f);
  EXPECT_EQ(y[8], -16.0f / 9.0f);
}

TEST(CodecLayoutTest, QsgdAndNaturalCodes) {
  // One coordinate per bucket so every level is deterministic: |x| = N, r = s.
  auto q = Make(Opts("qsgd", "auto", "f32", 0, 3, 1), 2);
  std::vector<float> x = {-2.0f, 0.0f};
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(q->Encode(x, rng, &e, {}));
  ASSERT_EQ(e.bytes.size(), kHeaderBytes + 8 + 1);  // 2 norms, 2 x 3 bits
  EXPECT_EQ(LoadLE<float>(e.bytes.data() + 16), 2.0f);
  EXPECT_EQ(LoadLE<float>(e.bytes.data() + 20), 0.0f);
  EXPECT_EQ(static_cast<uint8_t>(e.bytes[24]), 1 | (3 << 1));  // sign, level 3; then 0
  auto n = Make(Opts("natural"), 2);
  x = {-4.0f, 0.0f};
  FT_ASSERT_OK(n->Encode(x, rng, &e, {}));
  ASSERT_EQ(e.bytes.size(), kHeaderBytes + 3);  // 18 bits
  EXPECT_EQ(LoadLE<uint16_t>(e.bytes.data() + 16) & 0x1ff,
            1 | ((127 + 2) << 1));
}

// ---- Decode validation -------------------------------------------------------------------

struct Case {
  CompressorOptions o;
  std::string label;
};

std::vector<Case> AllCodecs() {
  std::vector<Case> out;
  for (const char* vt : {"f32", "f64"}) {
    out.push_back({Opts("identity", "auto", vt), "identity"});
    for (const char* name : {"topk", "randk", "randk_scaled"})
      for (const char* enc : {"auto", "packed", "u32", "varint", "bitmap", "seed"}) {
        if (std::string(enc) == "seed" && std::string(name) == "topk") continue;
        out.push_back({Opts(name, enc, vt, 9), absl::StrCat(name, "/", enc)});
      }
    out.push_back({Opts("qsgd", "auto", vt, 0, 15, 16), "qsgd s=15"});
    out.push_back({Opts("qsgd", "auto", vt, 0, 1, 7), "qsgd s=1"});
    out.push_back({Opts("qsgd", "auto", vt, 0, 1000, 512), "qsgd s=1000"});
    out.push_back({Opts("sign", "auto", vt, 0, 15, 10), "sign"});
    out.push_back({Opts("natural", "auto", vt), "natural"});
  }
  for (auto& c : out) c.label += " " + c.o.value_type;
  return out;
}

std::vector<float> Input(size_t d) {
  std::vector<float> x(d);
  for (size_t j = 0; j < d; ++j) x[j] = (j % 5 == 0) ? 0.0f : static_cast<float>(j) * 0.37f - 6;
  return x;
}

// Decodes into both output types; a successful decode must give finite values.
void DecodeMustNotCrash(const Compressor& c, const Encoded& e, size_t d) {
  std::vector<float> f(d);
  std::vector<double> g(d);
  if (c.Decode(e, absl::MakeSpan(f)).ok()) {
    for (float v : f) ASSERT_TRUE(std::isfinite(v));
  }
  if (c.Decode(e, absl::MakeSpan(g)).ok()) {
    for (double v : g) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(CodecFuzzTest, CorruptedMessagesNeverCrash) {
  const size_t d = 37;
  for (const Case& cs : AllCodecs()) {
    SCOPED_TRACE(cs.label);
    auto c = Make(cs.o, d);
    ASSERT_NE(c, nullptr);
    RngStream rng = RngStream::For(2, 0, 0, Purpose::kCompression);
    Encoded e;
    const std::vector<float> x = Input(d);
    FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
    std::vector<float> y(d);
    FT_ASSERT_OK(c->Decode(e, absl::MakeSpan(y)));
    // Every truncation.
    for (size_t n = 0; n < e.bytes.size(); ++n) {
      Encoded t = e;
      t.bytes.resize(n);
      EXPECT_FALSE(c->Decode(t, absl::MakeSpan(y)).ok()) << "truncated to " << n;
    }
    // Extensions.
    for (size_t extra : {1, 2, 7, 64}) {
      Encoded t = e;
      t.bytes.append(extra, '\0');
      EXPECT_FALSE(c->Decode(t, absl::MakeSpan(y)).ok()) << "extended by " << extra;
    }
    // Every single-bit flip (the result may be a valid message; it must not crash).
    for (size_t bit = 0; bit < e.bytes.size() * 8; ++bit) {
      Encoded t = e;
      t.bytes[bit / 8] = static_cast<char>(t.bytes[bit / 8] ^ (1 << (bit % 8)));
      DecodeMustNotCrash(*c, t, d);
    }
    // Random multi-byte corruption, with and without a length change.
    RngStream fz = RngStream::For(3, 0, 0, Purpose::kTest);
    for (int t = 0; t < 300; ++t) {
      Encoded m = e;
      const int edits = 1 + static_cast<int>(fz.UniformInt(6));
      for (int i = 0; i < edits; ++i) {
        const size_t pos = fz.UniformInt(m.bytes.size());
        m.bytes[pos] = static_cast<char>(fz.NextU64());
      }
      if (t % 3 == 1) m.bytes.resize(fz.UniformInt(m.bytes.size() + 1));
      if (t % 3 == 2) m.bytes.append(fz.UniformInt(9), static_cast<char>(fz.NextU64()));
      DecodeMustNotCrash(*c, m, d);
    }
    // Random bytes of the right length.
    for (int t = 0; t < 100; ++t) {
      Encoded m = e;
      for (char& ch : m.bytes) ch = static_cast<char>(fz.NextU64());
      DecodeMustNotCrash(*c, m, d);
    }
  }
}

TEST(CodecDecodeTest, EnvelopeChecks) {
  for (const Case& cs : AllCodecs()) {
    SCOPED_TRACE(cs.label);
    const size_t d = 37;
    auto c = Make(cs.o, d);
    RngStream rng = RngStream::For(4, 0, 0, Purpose::kCompression);
    Encoded e;
    FT_ASSERT_OK(c->Encode(Input(d), rng, &e, {}));
    std::vector<float> y(d), small(d - 1);
    Encoded wrong = e;
    wrong.codec = "zip/1";
    EXPECT_THAT(c->Decode(wrong, absl::MakeSpan(y)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zip/1")));
    EXPECT_THAT(c->Decode(e, absl::MakeSpan(small)),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
    wrong = e;
    wrong.dim = d + 1;
    EXPECT_FALSE(c->Decode(wrong, absl::MakeSpan(y)).ok());
    // Another configuration of the same codec refuses the message (header check).
    CompressorOptions other = cs.o;
    other.value_type = cs.o.value_type == "f32" ? "f64" : "f32";
    if (cs.o.compressor != "identity") {
      auto c2 = Make(other, d);
      EXPECT_THAT(c2->Decode(e, absl::MakeSpan(y)),
                  StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
    }
    // Encode length checks.
    std::vector<float> shorter(d - 1), dec_bad(3);
    EXPECT_FALSE(c->Encode(shorter, rng, &e, {}).ok());
    EXPECT_FALSE(c->Encode(Input(d), rng, &e, absl::MakeSpan(dec_bad)).ok());
  }
}

// Rewrites fields of a valid sparse u32 message.
TEST(CodecDecodeTest, SparseIndexAndValueChecks) {
  const size_t d = 20;
  auto c = Make(Opts("topk", "u32", "f32", 4), d);
  std::vector<float> x(d, 0.0f), y(d);
  x[2] = 1, x[5] = -2, x[11] = 3, x[19] = -4;
  RngStream rng = RngStream::For(5, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
  const size_t idx0 = kHeaderBytes + 4 * 4;
  const auto set_u32 = [](Encoded* m, size_t off, uint32_t v) {
    StoreLE<uint32_t>(m->bytes.data() + off, v);
  };
  Encoded m = e;
  set_u32(&m, idx0 + 12, 20);  // out of range
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of range")));
  m = e;
  set_u32(&m, idx0 + 4, 2);  // duplicate of entry 0
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("strictly increasing")));
  m = e;
  set_u32(&m, kHeaderBytes + 4, 0x7fc00000u);  // NaN value
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not finite")));
  m = e;
  set_u32(&m, 12, 5);  // n > k
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than k")));
  m = e;
  set_u32(&m, 8, 5);  // header k != configured k
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("configured k")));
  m = e;
  set_u32(&m, 4, 21);  // header d
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("header d")));
  m = e;
  m.bytes[1] = 0x03;  // varint where u32 is configured
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index encoding")));
  m = e;
  m.bytes[0] = 3;  // randk kind
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kind")));
  m = e;
  m.bytes.pop_back();
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
  // An f64 value beyond float range cannot be decoded into floats.
  auto c64 = Make(Opts("topk", "u32", "f64", 1), d);
  std::vector<double> xd(d, 0.0), yd(d);
  xd[3] = 1e300;
  FT_ASSERT_OK(c64->Encode(absl::MakeConstSpan(xd), rng, &e, {}));
  FT_EXPECT_OK(c64->Decode(e, absl::MakeSpan(yd)));
  EXPECT_THAT(c64->Decode(e, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not finite")));
}

TEST(CodecDecodeTest, QuantizerCodeChecks) {
  // qsgd s = 2: 2 level bits, so level 3 is not a valid code.
  auto c = Make(Opts("qsgd", "auto", "f32", 0, 2, 4), 4);
  std::vector<float> x = {1, 2, 3, 4}, y(4);
  RngStream rng = RngStream::For(6, 0, 0, Purpose::kTest);
  Encoded e;
  FT_ASSERT_OK(c->Encode(x, rng, &e, {}));
  Encoded m = e;
  m.bytes[kHeaderBytes + 4] = static_cast<char>(m.bytes[kHeaderBytes + 4] | 0x06);  // level 3
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a level")));
  m = e;
  StoreLE<float>(m.bytes.data() + kHeaderBytes, -1.0f);
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("norm")));
  m = e;
  StoreLE<float>(m.bytes.data() + kHeaderBytes, INFINITY);
  EXPECT_FALSE(c->Decode(m, absl::MakeSpan(y)).ok());
  m = e;
  m.bytes.back() = static_cast<char>(m.bytes.back() | 0x80);  // 12 bits used of 16: padding
  EXPECT_THAT(c->Decode(m, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("padding")));
  // Header levels / bucket must match the configuration.
  auto c3 = Make(Opts("qsgd", "auto", "f32", 0, 3, 4), 4);
  EXPECT_THAT(c3->Decode(e, absl::MakeSpan(y)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("configured")));
  // natural: exponent code 255 is invalid.
  auto n = Make(Opts("natural"), 1);
  std::vector<float> one = {1.0f}, out1(1);
  FT_ASSERT_OK(n->Encode(one, rng, &e, {}));
  m = e;
  StoreLE<uint16_t>(m.bytes.data() + kHeaderBytes, 255 << 1);
  EXPECT_THAT(n->Decode(m, absl::MakeSpan(out1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("9-bit code")));
  // Non-finite inputs are refused by every compressor.
  for (const Case& cs : AllCodecs()) {
    if (cs.o.compressor == "identity" && cs.o.value_type == "f32") continue;  // raw floats
    if (cs.o.compressor == "randk" || cs.o.compressor == "randk_scaled") continue;
    auto cc = Make(cs.o, 37);
    std::vector<float> bad = Input(37);
    bad[12] = NAN;
    EXPECT_THAT(cc->Encode(bad, rng, &e, {}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("12")))
        << cs.label;
  }
}

}  // namespace
}  // namespace fedtrain
