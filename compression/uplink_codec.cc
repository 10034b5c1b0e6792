#include "compression/uplink_codec.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/payload_codec.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

// Scale factor that brings ||v|| down to `clip` (1 when already inside or clipping is off).
double ClipScale(ConstVec v, double clip) {
  if (clip <= 0) return 1.0;
  double sq = 0.0;
  for (float x : v) sq += static_cast<double>(x) * x;
  const double norm = std::sqrt(sq);
  return norm > clip ? clip / norm : 1.0;
}

}  // namespace

std::string FeedbackErrorKey(size_t part) { return absl::StrCat("ef.e.", part); }
std::string FeedbackTrackerKey(size_t part) { return absl::StrCat("ef.h.", part); }

absl::StatusOr<std::unique_ptr<UplinkCodec>> UplinkCodec::Create(const CompressorOptions& c,
                                                                  const UplinkOptions& o,
                                                                  size_t dim) {
  std::unique_ptr<UplinkCodec> u(new UplinkCodec());
  u->o_ = o;
  FT_ASSIGN_OR_RETURN(u->owned_compressor_, MakeCompressor(c, dim));
  FT_RETURN_IF_ERROR(ValidateFeedbackOptions(o.feedback));
  if (HasTracker(o.feedback.method)) {
    CompressorOptions dense;  // the identity codec with the compressor's value type
    dense.value_type = c.value_type;
    FT_ASSIGN_OR_RETURN(u->owned_dense_, MakeCompressor(dense, dim));
  }
  u->compressor_ = u->owned_compressor_.get();
  u->dense_ = u->owned_dense_.get();
  return u;
}

absl::Status UplinkCodec::Decode(const v1::Payload& in, absl::Span<const absl::Cord> part_data,
                                 size_t expected_parts, size_t dim, Payload* out,
                                 std::vector<bool>* is_dense) const {
  return DecodePayload(in, part_data, *compressor_, expected_parts, dim, out, dense_, is_dense);
}

absl::Status UplinkCodec::Encode(const Payload& up, RngStream& rng, ClientState* state,
                                 v1::Payload* out, Payload* decoded) const {
  out->Clear();
  Payload dec;  // filled only when asked for; moved to `decoded` on success
  if (decoded != nullptr) dec.parts.resize(up.parts.size());
  const Feedback method = o_.feedback.method;
  // The feedback memory is updated in place: the caller discards `state` after an error.
  std::map<std::string, std::vector<double>>& wide = state->wide;
  // Scratch of d doubles, written before read (no zero fill): the scaled update (only when
  // clipping scales it) and the decoded message.
  std::unique_ptr<double[]> v, sent;
  size_t v_size = 0, sent_size = 0;
  auto fit = [](std::unique_ptr<double[]>* buf, size_t* size, size_t n) {
    if (*size < n) {
      buf->reset(new double[n]);
      *size = n;
    }
  };
  for (size_t p = 0; p < up.parts.size(); ++p) {
    const std::vector<float>& part = up.parts[p];
    // With error feedback, FeedbackStep checks the (scaled) values itself; one pass suffices.
    if (method == Feedback::kNone)
      if (absl::Status s = CheckFinite(part, absl::StrCat("up part ", p)); !s.ok()) return s;
    const double scale = ClipScale(part, o_.clip_norm);
    Encoded e;
    bool used_dense = false;  // the part went through `dense_` (tracker initialisation)
    if (method == Feedback::kNone && scale == 1.0) {
      FT_RETURN_IF_ERROR(compressor_->Encode(ConstVec(part), rng, &e, Vec()));
    } else {
      // Unclipped, the values go to FeedbackStep as floats (read as double exactly, as
      // 1.0 * v would give): no double copy.
      if (scale != 1.0) {
        fit(&v, &v_size, part.size());
        for (size_t j = 0; j < part.size(); ++j) v[j] = scale * static_cast<double>(part[j]);
      }
      if (method == Feedback::kNone) {
        FT_RETURN_IF_ERROR(
            compressor_->Encode(absl::Span<const double>(v.get(), part.size()), rng, &e, {}));
      } else {
        if (HasTracker(method) && dense_ == nullptr)
          return absl::InternalError("tracker feedback without a dense codec");
        FeedbackState st;
        st.e = std::move(wide[FeedbackErrorKey(p)]);
        st.h = std::move(wide[FeedbackTrackerKey(p)]);
        st.initialised = !st.h.empty();
        bool dense = false;
        const Compressor& dense_codec = dense_ != nullptr ? *dense_ : *compressor_;
        fit(&sent, &sent_size, part.size());
        const absl::Span<double> sent_span(sent.get(), part.size());
        absl::Status s =
            scale == 1.0
                ? FeedbackStep(o_.feedback, *compressor_, dense_codec, ConstVec(part), rng, &st,
                               &e, sent_span, &dense)
                : FeedbackStep(o_.feedback, *compressor_, dense_codec,
                               absl::Span<const double>(v.get(), part.size()), rng, &st, &e,
                               sent_span, &dense);
        if (!s.ok()) {
          // FeedbackStep leaves `st` as it was on error: put it back.
          wide[FeedbackErrorKey(p)] = std::move(st.e);
          wide[FeedbackTrackerKey(p)] = std::move(st.h);
          if (wide[FeedbackErrorKey(p)].empty()) wide.erase(FeedbackErrorKey(p));
          if (wide[FeedbackTrackerKey(p)].empty()) wide.erase(FeedbackTrackerKey(p));
          return absl::Status(s.code(), absl::StrCat("up part ", p, ": ", s.message()));
        }
        used_dense = dense;
        if (!st.e.empty()) wide[FeedbackErrorKey(p)] = std::move(st.e);
        else wide.erase(FeedbackErrorKey(p));
        if (!st.h.empty()) wide[FeedbackTrackerKey(p)] = std::move(st.h);
        else wide.erase(FeedbackTrackerKey(p));
      }
    }
    if (decoded != nullptr) {
      // The server's own decode (Decode below: codec.Decode into float), so `sent`
      // is what it reconstructs bit for bit whatever path produced the message.
      const Compressor& codec = used_dense && dense_ != nullptr ? *dense_ : *compressor_;
      dec.parts[p].resize(e.dim);
      FT_RETURN_IF_ERROR(codec.Decode(e, absl::MakeSpan(dec.parts[p])));
    }
    v1::Tensor* t = out->add_parts();
    t->set_codec(std::move(e.codec));
    t->set_dim(e.dim);
    t->set_data(std::move(e.bytes));
  }
  for (const auto& kv : up.scalars) (*out->mutable_scalars())[kv.first] = kv.second;
  if (decoded != nullptr) {
    dec.scalars = up.scalars;
    *decoded = std::move(dec);
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
