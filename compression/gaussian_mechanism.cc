#include "compression/gaussian_mechanism.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "core/status_macros.h"
// Last: it turns FP contraction off for the rest of this file (see there).
#include "compression/quantizer_internal.h"

namespace fedtrain {
namespace compression_internal {
namespace {

constexpr uint8_t kKindGaussian = 9;

class GaussianMechanism final : public CompressorBase<GaussianMechanism> {
 public:
  GaussianMechanism(const GaussianMechanismOptions& o, size_t d)
      : o_(o), d_(d), local_(o.placement == "local") {}

  std::string codec() const override { return "gaussian/1"; }
  size_t dim() const override { return d_; }
  CompressorInfo info() const override { return {false, false, 0.0, 0.0}; }
  uint64_t PayloadBits() const override { return 32ull * d_; }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream& rng, Encoded* out,
                       absl::Span<T> decoded) const {
    FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
    FT_RETURN_IF_ERROR(CheckFinite(x, "gaussian mechanism input"));
    out->codec = codec();
    out->dim = d_;
    out->bytes.clear();
    WriteHeader(MakeHeader(kKindGaussian, kF32, d_, local_ ? 1u : 2u, 0), &out->bytes);
    out->bytes.resize(kHeaderBytes + 4 * d_);
    char* p = out->bytes.data() + kHeaderBytes;
    double scale = 1.0;
    if (!local_) {  // l2 clip to S, accumulated in index order
      double ss = 0;
      for (size_t j = 0; j < d_; ++j) ss += static_cast<double>(x[j]) * static_cast<double>(x[j]);
      const double norm = std::sqrt(ss);
      if (norm > o_.clip) scale = o_.clip / norm;
    }
    const double c = o_.clip;
    for (size_t j = 0; j < d_; ++j) {
      double v = static_cast<double>(x[j]);
      if (local_) {
        v = v < -c ? -c : v > c ? c : v;
      } else {
        v *= scale;
      }
      v += o_.sigma * rng.Normal();
      const float f = static_cast<float>(v);
      if (!std::isfinite(f))
        return absl::InvalidArgumentError(
            absl::StrCat("gaussian mechanism: value ", v, " at index ", j, " overflows float32"));
      StoreLE(p + 4 * j, f);
      if (!decoded.empty()) decoded[j] = static_cast<T>(f);
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const {
    FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
    Header h;
    FT_RETURN_IF_ERROR(ReadHeader(in.bytes, &h));
    FT_RETURN_IF_ERROR(CheckQuantHeader(*this, h, kKindGaussian, kF32, d_, local_ ? 1u : 2u, 0));
    FT_RETURN_IF_ERROR(CheckLength(*this, in.bytes.size(), kHeaderBytes + 4 * d_));
    const char* p = in.bytes.data() + kHeaderBytes;
    for (size_t j = 0; j < d_; ++j) {
      const float f = LoadLE<float>(p + 4 * j);
      if (!std::isfinite(f))
        return absl::InvalidArgumentError(
            absl::StrCat("gaussian/1: value at index ", j, " is not finite"));
      out[j] = static_cast<T>(f);
    }
    return absl::OkStatus();
  }

 private:
  GaussianMechanismOptions o_;
  size_t d_;
  bool local_;
};

}  // namespace
}  // namespace compression_internal

absl::StatusOr<std::unique_ptr<Compressor>> MakeGaussianMechanism(
    const GaussianMechanismOptions& o, size_t dim) {
  if (o.placement != "local" && o.placement != "distributed")
    return absl::InvalidArgumentError(absl::StrCat(
        "privacy.placement '", o.placement,
        "' is unknown to the client-side mechanism; known: local, distributed (central noise "
        "is added by the server)"));
  if (!(o.clip > 0) || !std::isfinite(o.clip))
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.clip = ", o.clip, " must be finite and > 0"));
  if (!(o.sigma >= 0) || !std::isfinite(o.sigma))
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.noise_multiplier gives a noise deviation of ", o.sigma,
                     "; it must be finite and >= 0"));
  if (dim > UINT32_MAX)
    return absl::InvalidArgumentError(
        absl::StrCat("gaussian mechanism takes vectors of at most 2^32-1 values, not ", dim));
  return std::unique_ptr<Compressor>(new compression_internal::GaussianMechanism(o, dim));
}

}  // namespace fedtrain
