#include "compression/compressor.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

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

template <typename D>
absl::Status IdentityDecode(const IdentityCompressor& c, const Encoded& in, absl::Span<D> out) {
  if (in.codec != c.codec())
    return absl::InvalidArgumentError(
        absl::StrCat("codec '", in.codec, "' where '", c.codec(), "' was expected"));
  if (in.dim != out.size())
    return absl::InvalidArgumentError(
        absl::StrCat("vector of ", in.dim, " floats; model has ", out.size()));
  if (in.bytes.size() != in.dim * sizeof(float))
    return absl::InvalidArgumentError(absl::StrCat("identity/1 payload of ", in.bytes.size(),
                                                   " bytes for ", in.dim, " floats"));
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
absl::Status IdentityCompressor::Decode(const Encoded& in, Vec out) const {
  return IdentityDecode(*this, in, out);
}
absl::Status IdentityCompressor::Decode(const Encoded& in, absl::Span<double> out) const {
  return IdentityDecode(*this, in, out);
}

absl::StatusOr<std::unique_ptr<Compressor>> MakeCompressor(const CompressorOptions& o,
                                                           size_t dim) {
  if (o.compressor == "identity" && o.value_type == "f32")
    return std::unique_ptr<Compressor>(new IdentityCompressor(dim));
  return absl::NotFoundError(
      absl::StrCat("unknown compressor '", o.compressor, "'; known: identity"));
}

namespace {
template <typename T>
absl::Status CheckFiniteT(absl::Span<const T> v, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has a non-finite value (", v[i], ") at index ", i));
  return absl::OkStatus();
}
}  // namespace

absl::Status CheckFinite(ConstVec v, const std::string& what) { return CheckFiniteT(v, what); }
absl::Status CheckFinite(absl::Span<const double> v, const std::string& what) {
  return CheckFiniteT(v, what);
}

}  // namespace fedtrain
