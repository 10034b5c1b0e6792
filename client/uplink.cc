#include "client/uplink.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

std::string Key(const char* what, size_t part) { return absl::StrCat("ef.", what, ".", part); }

// Scale factor that brings ||v|| down to `clip` (1 when already inside or clipping is off).
double ClipScale(ConstVec v, double clip) {
  if (clip <= 0) return 1.0;
  double sq = 0.0;
  for (float x : v) sq += static_cast<double>(x) * x;
  const double norm = std::sqrt(sq);
  return norm > clip ? clip / norm : 1.0;
}

}  // namespace

absl::Status UplinkEncoder::Encode(const Payload& up, RngStream& rng, ClientState* state,
                                   v1::Payload* out, Payload* decoded) const {
  out->Clear();
  Payload dec;  // filled only when asked for; moved to `decoded` on success
  if (decoded != nullptr) dec.parts.resize(up.parts.size());
  const Feedback method = o_.feedback.method;
  // Work on a copy of the feedback state: `state` changes only when every part succeeded.
  std::map<std::string, std::vector<double>> wide = state->wide;
  std::vector<double> v, sent;
  for (size_t p = 0; p < up.parts.size(); ++p) {
    const std::vector<float>& part = up.parts[p];
    if (absl::Status s = CheckFinite(part, absl::StrCat("up part ", p)); !s.ok()) return s;
    const double scale = ClipScale(part, o_.clip_norm);
    Encoded e;
    bool used_dense = false;  // the part went through `dense_` (tracker initialisation)
    if (method == Feedback::kNone && scale == 1.0) {
      FT_RETURN_IF_ERROR(compressor_->Encode(ConstVec(part), rng, &e, Vec()));
    } else {
      v.resize(part.size());
      for (size_t j = 0; j < part.size(); ++j) v[j] = scale * static_cast<double>(part[j]);
      if (method == Feedback::kNone) {
        FT_RETURN_IF_ERROR(compressor_->Encode(absl::Span<const double>(v), rng, &e, {}));
      } else {
        FeedbackState st;
        st.e = std::move(wide[Key("e", p)]);
        st.h = std::move(wide[Key("h", p)]);
        st.initialised = !st.h.empty();
        sent.resize(part.size());
        bool dense = false;
        if (HasTracker(method) && dense_ == nullptr)
          return absl::InternalError("tracker feedback without a dense codec");
        FT_RETURN_IF_ERROR(FeedbackStep(o_.feedback, *compressor_,
                                        dense_ != nullptr ? *dense_ : *compressor_, v, rng, &st,
                                        &e, absl::MakeSpan(sent), &dense));
        used_dense = dense;
        if (!st.e.empty()) wide[Key("e", p)] = std::move(st.e);
        else wide.erase(Key("e", p));
        if (!st.h.empty()) wide[Key("h", p)] = std::move(st.h);
        else wide.erase(Key("h", p));
      }
    }
    if (decoded != nullptr) {
      // The server's own decode (comm/payload_wire.cc: codec.Decode into float), so `sent`
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
  state->wide = std::move(wide);
  if (decoded != nullptr) {
    dec.scalars = up.scalars;
    *decoded = std::move(dec);
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
