#include "compression/compressor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "compression/gaussian_mechanism.h"
#include "compression/rqm.h"
#include "core/status_macros.h"

namespace fedtrain {

static_assert(sizeof(float) == 4, "float32 wire format");
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codecs write little-endian values; this build assumes a little-endian host"
#endif

namespace {

template <typename T, typename D>
absl::Status IdentityEncode(const IdentityCompressor& c, absl::Span<const T> x, Encoded* out,
                            absl::Span<D> decoded) {
  if (c.dim() != 0 && x.size() != c.dim())
    return absl::InvalidArgumentError(
        absl::StrCat("vector of ", x.size(), " values; the compressor is for ", c.dim()));
  if (!decoded.empty() && decoded.size() != x.size())
    return absl::InvalidArgumentError(absl::StrCat(
        "identity/1: `decoded` has ", decoded.size(), " values; expected 0 or ", x.size()));
  out->codec = c.codec();
  out->dim = x.size();
  out->bytes.resize(x.size() * sizeof(float));
  char* p = out->bytes.data();
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = static_cast<float>(x[i]);
    std::memcpy(p + i * sizeof(float), &v, sizeof(float));
    if (!decoded.empty()) decoded[i] = static_cast<D>(v);
  }
  return absl::OkStatus();
}

// Codec, length and byte count of an identity/1 message of `bytes` bytes.
absl::Status IdentityCheck(const IdentityCompressor& c, const EncodedView& in, size_t bytes,
                           size_t out_size) {
  if (in.codec != c.codec())
    return absl::InvalidArgumentError(
        absl::StrCat("codec '", in.codec, "' where '", c.codec(), "' was expected"));
  if (in.dim != out_size)
    return absl::InvalidArgumentError(
        absl::StrCat("vector of ", in.dim, " floats; model has ", out_size));
  if (bytes != in.dim * sizeof(float))
    return absl::InvalidArgumentError(absl::StrCat("identity/1 payload of ", bytes,
                                                   " bytes for ", in.dim, " floats"));
  return absl::OkStatus();
}

template <typename D>
absl::Status IdentityDecode(const IdentityCompressor& c, const EncodedView& in, absl::Span<D> out) {
  FT_RETURN_IF_ERROR(IdentityCheck(c, in, in.bytes.size(), out.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    float v;
    std::memcpy(&v, in.bytes.data() + i * sizeof(float), sizeof(float));
    out[i] = static_cast<D>(v);
  }
  return CheckFinite(absl::Span<const D>(out.data(), out.size()), "decoded vector");
}

}  // namespace

absl::Status IdentityCompressor::Encode(ConstVec x, RngStream&, Encoded* out,
                                        Vec decoded) const {
  return IdentityEncode(*this, x, out, decoded);
}
absl::Status IdentityCompressor::Encode(absl::Span<const double> x, RngStream&, Encoded* out,
                                        absl::Span<double> decoded) const {
  return IdentityEncode(*this, x, out, decoded);
}
absl::Status IdentityCompressor::Decode(const EncodedView& in, Vec out) const {
  return IdentityDecode(*this, in, out);
}
absl::Status IdentityCompressor::Decode(const EncodedView& in, absl::Span<double> out) const {
  return IdentityDecode(*this, in, out);
}
absl::Status IdentityCompressor::DecodeCord(const EncodedView& in, const absl::Cord& bytes,
                                            Vec out) const {
  FT_RETURN_IF_ERROR(IdentityCheck(*this, in, bytes.size(), out.size()));
  // Little-endian float32 on the wire and in memory (as the element-wise decode assumes), so
  // the pieces are copied as they are, each straight to its place in `out`.
  char* dst = reinterpret_cast<char*>(out.data());
  for (absl::string_view piece : bytes.Chunks()) {
    std::memcpy(dst, piece.data(), piece.size());
    dst += piece.size();
  }
  return CheckFinite(ConstVec(out.data(), out.size()), "decoded vector");
}

absl::Status Compressor::DecodeCord(const EncodedView& in, const absl::Cord& bytes,
                                    Vec out) const {
  EncodedView view = in;
  if (absl::optional<absl::string_view> flat = bytes.TryFlat(); flat.has_value()) {
    view.bytes = *flat;
    return Decode(view, out);
  }
  const std::string copy(bytes);
  view.bytes = copy;
  return Decode(view, out);
}

namespace compression_internal {

void WriteHeader(const Header& h, std::string* out) {
  char buf[kHeaderBytes];
  buf[0] = static_cast<char>(h.kind);
  buf[1] = static_cast<char>((h.encoding & 0x0f) | ((h.value_type & 0x03) << 4));
  buf[2] = 0;
  buf[3] = 0;
  StoreLE<uint32_t>(buf + 4, h.d);
  StoreLE<uint32_t>(buf + 8, h.a);
  StoreLE<uint32_t>(buf + 12, h.b);
  out->append(buf, kHeaderBytes);
}

absl::Status ReadHeader(absl::string_view bytes, Header* h) {
  if (bytes.size() < kHeaderBytes)
    return absl::InvalidArgumentError(absl::StrCat("message of ", bytes.size(),
                                                   " bytes is shorter than its ", kHeaderBytes,
                                                   "-byte header"));
  const char* p = bytes.data();
  const uint8_t flags = static_cast<uint8_t>(p[1]);
  if ((flags & 0xc0) != 0 || p[2] != 0 || p[3] != 0)
    return absl::InvalidArgumentError("message header has reserved bits set");
  h->kind = static_cast<uint8_t>(p[0]);
  h->encoding = flags & 0x0f;
  h->value_type = (flags >> 4) & 0x03;
  h->d = LoadLE<uint32_t>(p + 4);
  h->a = LoadLE<uint32_t>(p + 8);
  h->b = LoadLE<uint32_t>(p + 12);
  return absl::OkStatus();
}

absl::Status CheckEnvelope(const Compressor& c, const EncodedView& in, size_t out_size) {
  if (in.codec != c.codec())
    return absl::InvalidArgumentError(
        absl::StrCat("codec '", in.codec, "' where '", c.codec(), "' was expected"));
  if (in.dim != c.dim() || out_size != c.dim())
    return absl::InvalidArgumentError(absl::StrCat("message for a vector of ", in.dim,
                                                   " values, output of ", out_size,
                                                   "; the compressor is for ", c.dim()));
  return absl::OkStatus();
}

absl::Status CheckEncodeArgs(const Compressor& c, size_t x_size, size_t decoded_size) {
  if (x_size != c.dim())
    return absl::InvalidArgumentError(
        absl::StrCat(c.codec(), ": vector of ", x_size, " values; the compressor is for ",
                     c.dim()));
  if (decoded_size != 0 && decoded_size != c.dim())
    return absl::InvalidArgumentError(
        absl::StrCat(c.codec(), ": `decoded` has ", decoded_size, " values; expected 0 or ",
                     c.dim()));
  return absl::OkStatus();
}

namespace {

// Raw little-endian float64 values, no header ("identity_f64/1"): docs/compression.md §1.1 with
// 64-bit values, so the round trip of a double vector is exact (U1).
class IdentityF64Compressor final : public CompressorBase<IdentityF64Compressor> {
 public:
  explicit IdentityF64Compressor(size_t dim) : dim_(dim) {}
  std::string codec() const override { return "identity_f64/1"; }
  size_t dim() const override { return dim_; }
  CompressorInfo info() const override { return {true, true, 1.0, 0.0}; }
  uint64_t PayloadBits() const override { return 64ull * dim_; }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream&, Encoded* out,
                       absl::Span<T> decoded) const {
    FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
    FT_RETURN_IF_ERROR(CheckFinite(x, "identity_f64 input"));
    out->codec = codec();
    out->dim = dim_;
    out->bytes.resize(dim_ * sizeof(double));
    char* p = out->bytes.data();
    for (size_t i = 0; i < dim_; ++i) StoreLE<double>(p + 8 * i, static_cast<double>(x[i]));
    if (!decoded.empty())
      for (size_t i = 0; i < dim_; ++i) decoded[i] = x[i];
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const {
    FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
    if (in.bytes.size() != dim_ * sizeof(double))
      return absl::InvalidArgumentError(absl::StrCat("identity_f64/1 payload of ",
                                                     in.bytes.size(), " bytes for ", dim_,
                                                     " doubles"));
    const char* p = in.bytes.data();
    for (size_t i = 0; i < dim_; ++i) {
      const double v = LoadLE<double>(p + 8 * i);
      // A float output cannot hold values beyond float range: refuse rather than write inf.
      if (!std::isfinite(v) || !std::isfinite(static_cast<T>(v)))
        return absl::InvalidArgumentError(
            absl::StrCat("identity_f64/1 value ", v, " at index ", i, " is not finite"));
      out[i] = static_cast<T>(v);
    }
    return absl::OkStatus();
  }

 private:
  size_t dim_;
};

}  // namespace
}  // namespace compression_internal

namespace {

constexpr const char* kKnownCompressors =
    "identity, topk, randk, randk_scaled, qsgd, sign, natural, rqm, gaussian";

absl::StatusOr<uint8_t> ParseIndexEncoding(const std::string& s) {
  using namespace compression_internal;  // NOLINT: enum constants
  if (s == "auto") return uint8_t{kEncAuto};
  if (s == "packed") return uint8_t{kEncPacked};
  if (s == "u32") return uint8_t{kEncU32};
  if (s == "varint") return uint8_t{kEncVarint};
  if (s == "bitmap") return uint8_t{kEncBitmap};
  if (s == "seed") return uint8_t{kEncSeed};
  return absl::InvalidArgumentError(absl::StrCat(
      "compression.index_encoding '", s, "' is unknown; known: auto, packed, u32, varint, "
      "bitmap, seed"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Compressor>> MakeCompressor(const CompressorOptions& o,
                                                           size_t dim) {
  using namespace compression_internal;  // NOLINT: enum constants
  const std::string& name = o.compressor;
  const bool sparse = name == "topk" || name == "randk" || name == "randk_scaled";
  const bool known = sparse || name == "identity" || name == "qsgd" || name == "sign" ||
                     name == "natural" || name == "rqm" || name == "gaussian";
  if (!known)
    return absl::NotFoundError(
        absl::StrCat("unknown compressor '", name, "'; known: ", kKnownCompressors));
  uint8_t vt;
  if (o.value_type == "f32") {
    vt = kF32;
  } else if (o.value_type == "f64") {
    vt = kF64;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "compression.value_type '", o.value_type, "' is unknown; known: f32, f64"));
  }
  FT_ASSIGN_OR_RETURN(const uint8_t enc, ParseIndexEncoding(o.index_encoding));
  if (enc == kEncSeed && name != "randk" && name != "randk_scaled")
    return absl::InvalidArgumentError(absl::StrCat(
        "compression.index_encoding 'seed' is only for randk and randk_scaled, not '", name,
        "'"));
  if (name == "rqm") {
    RqmOptions r;
    r.clip = o.rqm_clip;
    r.delta = o.rqm_range_extension;
    r.levels = o.rqm_levels;
    r.keep = o.rqm_keep;
    return MakeRqmCompressor(r, dim);
  }
  if (name == "gaussian") {
    GaussianMechanismOptions g;
    g.placement = o.gaussian_placement;
    g.clip = o.gaussian_clip;
    g.sigma = o.gaussian_sigma;
    return MakeGaussianMechanism(g, dim);
  }
  if (name == "identity") {
    if (vt == kF32) return std::unique_ptr<Compressor>(new IdentityCompressor(dim));
    return std::unique_ptr<Compressor>(new IdentityF64Compressor(dim));
  }
  if (dim > UINT32_MAX)
    return absl::InvalidArgumentError(absl::StrCat(
        "compressor '", name, "' takes vectors of at most 2^32-1 values, not ", dim));
  if (sparse) {
    if (o.k < 0 || static_cast<uint64_t>(o.k) > dim)
      return absl::InvalidArgumentError(
          absl::StrCat("compression.k = ", o.k, " must be in (0, d] with d = ", dim));
    if (o.k_fraction != 0.0 && !(o.k_fraction > 0.0 && o.k_fraction <= 1.0))
      return absl::InvalidArgumentError(
          absl::StrCat("compression.k_fraction = ", o.k_fraction, " must be in (0, 1]"));
    uint64_t k = static_cast<uint64_t>(o.k);
    if (k == 0) {
      if (o.k_fraction == 0.0)
        return absl::InvalidArgumentError(absl::StrCat(
            "compressor '", name, "' needs compression.k or compression.k_fraction"));
      if (dim == 0)
        return absl::InvalidArgumentError(
            "compression.k_fraction: no k in (0, d] for an empty vector (d = 0)");
      k = static_cast<uint64_t>(std::llround(o.k_fraction * static_cast<double>(dim)));
      if (k < 1) k = 1;
      if (k > dim) k = dim;
    }
    SparseConfig c;
    c.kind = name == "topk" ? kKindTopK : name == "randk" ? kKindRandK : kKindRandKScaled;
    c.d = dim;
    c.k = static_cast<uint32_t>(k);
    c.encoding = enc;
    c.value_type = vt;
    return NewSparseCompressor(c);
  }
  QuantizerConfig c;
  c.d = dim;
  c.value_type = vt;
  if (name == "qsgd") {
    c.kind = kKindQsgd;
    if (o.levels < 1 || o.levels > 65536)
      return absl::InvalidArgumentError(
          absl::StrCat("compression.levels = ", o.levels, " must be in [1, 65536]"));
    if (o.bucket < 1)
      return absl::InvalidArgumentError(
          absl::StrCat("compression.bucket = ", o.bucket, " must be >= 1 for qsgd"));
    c.levels = static_cast<uint32_t>(o.levels);
    c.bucket = static_cast<uint32_t>(
        std::min<uint64_t>(static_cast<uint64_t>(o.bucket), std::max<size_t>(dim, 1)));
  } else if (name == "sign") {
    c.kind = kKindSign;
    if (o.bucket < 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "compression.bucket = ", o.bucket, " must be >= 0 for sign (0 = whole vector)"));
    const uint64_t b = o.bucket == 0 ? dim : static_cast<uint64_t>(o.bucket);
    c.bucket = static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(b, dim)));
  } else {
    c.kind = kKindNatural;
  }
  return NewQuantizer(c);
}

namespace {
// Whether p[0..n) are all finite: an exponent field of all ones is Inf or NaN. Branch-free,
// so the compiler vectorizes it (the early-exit loop below does not vectorize).
template <typename T>
bool AllFinite(const T* p, size_t n) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits kExp = static_cast<Bits>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  Bits bad = 0;
  for (size_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + i, sizeof(b));
    bad |= static_cast<Bits>((b & kExp) == kExp);
  }
  return bad == 0;
}

template <typename T>
absl::Status CheckFiniteT(absl::Span<const T> v, const std::string& what) {
  constexpr size_t kBlock = 4096;
  for (size_t start = 0; start < v.size(); start += kBlock) {
    const size_t n = std::min(kBlock, v.size() - start);
    if (AllFinite(v.data() + start, n)) continue;
    for (size_t i = start; i < start + n; ++i)
      if (!std::isfinite(v[i]))
        return absl::InvalidArgumentError(
            absl::StrCat(what, " has a non-finite value (", v[i], ") at index ", i));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status CheckFinite(ConstVec v, const std::string& what) { return CheckFiniteT(v, what); }
absl::Status CheckFinite(absl::Span<const double> v, const std::string& what) {
  return CheckFiniteT(v, what);
}

}  // namespace fedtrain
