// Error feedback (docs/compression.md §2). See error_feedback.h for the round structure.
//
// State and payload per worker, in d doubles / wire bits per coordinate:
//   none      state 0                         uplink C(v)
//   EF14      state d (e)                     uplink C(e + v)
//   EF21(-W)  state d (h)                     uplink C(v - h); first message dense (32 or 64 bits)
//   EControl  state 2d (e, h)                 uplink C(eta e + v - h); first message dense
// Every state update uses the decoded message (what the server reconstructs), never the
// pre-encoding doubles (docs/compression.md §2 rule), so worker and server trackers agree bit for
// bit. All state arithmetic is in double; each step is O(d) on top of the compressor.
#include "compression/error_feedback.h"

#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

namespace {

constexpr const char* kKnownFeedback = "none, ef14, ef21, ef21w, econtrol";

// A state vector where "empty" means all zeros, as a pointer to d values (`zeros` holds them
// when needed). Plain pointers keep the O(d) loops cheap in unoptimised sanitizer builds too.
const double* OrZeros(const std::vector<double>& v, size_t d, std::vector<double>* zeros) {
  if (!v.empty()) return v.data();
  zeros->assign(d, 0.0);
  return zeros->data();
}

absl::Status CheckStateSize(const std::vector<double>& v, size_t d, const char* what) {
  if (!v.empty() && v.size() != d)
    return absl::InvalidArgumentError(absl::StrCat("feedback state ", what, " has ", v.size(),
                                                   " values; the vector has ", d));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Feedback> ParseFeedback(const std::string& name) {
  if (name == "none") return Feedback::kNone;
  if (name == "ef14") return Feedback::kEf14;
  if (name == "ef21") return Feedback::kEf21;
  if (name == "ef21w") return Feedback::kEf21W;
  if (name == "econtrol") return Feedback::kEControl;
  return absl::InvalidArgumentError(absl::StrCat("compression.feedback: unknown method '", name,
                                                 "'; known: ", kKnownFeedback));
}

const char* FeedbackName(Feedback f) {
  switch (f) {
    case Feedback::kNone:
      return "none";
    case Feedback::kEf14:
      return "ef14";
    case Feedback::kEf21:
      return "ef21";
    case Feedback::kEf21W:
      return "ef21w";
    case Feedback::kEControl:
      return "econtrol";
  }
  return "unknown";
}

bool HasTracker(Feedback f) {
  return f == Feedback::kEf21 || f == Feedback::kEf21W || f == Feedback::kEControl;
}

absl::Status ValidateFeedbackOptions(const FeedbackOptions& o) {
  // Written so that NaN fails too.
  if (!(o.eta >= 0.0 && o.eta < 1.0))
    return absl::InvalidArgumentError(
        absl::StrCat("compression.eta must be in [0, 1), got ", o.eta,
                     " (eta close to 1 is unstable, docs/compression.md §2.4)"));
  switch (o.method) {
    case Feedback::kNone:
    case Feedback::kEf14:
    case Feedback::kEf21:
    case Feedback::kEf21W:
    case Feedback::kEControl:
      break;
    default:
      return absl::InvalidArgumentError("compression.feedback: invalid enum value");
  }
  return absl::OkStatus();
}

double Ef21Xi(double delta) {
  FT_CHECK(delta > 0.0 && delta <= 1.0);
  const double r = std::sqrt(1.0 - delta);
  return r / (1.0 - r);
}

double Ef21TheoryStep(double l, double l_mean, double delta) {
  return 1.0 / (l + l_mean * Ef21Xi(delta));
}

namespace {

// The input as doubles: itself, or (float input) a converted copy in `buf`. Float to double is
// exact, so both give the same encodings.
absl::Span<const double> AsDouble(absl::Span<const double> v, std::unique_ptr<double[]>*) {
  return v;
}
absl::Span<const double> AsDouble(absl::Span<const float> v, std::unique_ptr<double[]>* buf) {
  buf->reset(new double[v.size()]);
  for (size_t j = 0; j < v.size(); ++j) (*buf)[j] = static_cast<double>(v[j]);
  return absl::Span<const double>(buf->get(), v.size());
}

template <typename T>
absl::Status FeedbackStepImpl(const FeedbackOptions& o, const Compressor& c,
                              const Compressor& dense_codec, absl::Span<const T> v,
                              RngStream& rng, FeedbackState* st, Encoded* out,
                              absl::Span<double> sent, bool* dense) {
  FT_CHECK(st != nullptr && out != nullptr);
  FT_RETURN_IF_ERROR(ValidateFeedbackOptions(o));
  const size_t d = v.size();
  if (c.dim() != 0 && c.dim() != d)
    return absl::InvalidArgumentError(absl::StrCat("vector of ", d, " values; the compressor ",
                                                   c.codec(), " is for ", c.dim()));
  if (sent.size() != d)
    return absl::InvalidArgumentError(
        absl::StrCat("`sent` has ", sent.size(), " values; the vector has ", d));
  FT_RETURN_IF_ERROR(CheckFinite(v, "error-feedback input"));
  FT_RETURN_IF_ERROR(CheckStateSize(st->e, d, "e"));
  FT_RETURN_IF_ERROR(CheckStateSize(st->h, d, "h"));

  // Every fallible call (the encodes) comes before the state changes: on error `st` is
  // unchanged. After it, e and h are updated in place (no new d-sized vectors per message).
  std::vector<double> zeros_e, zeros_h;
  const double* e = OrZeros(st->e, d, &zeros_e);
  const double* h = OrZeros(st->h, d, &zeros_h);
  const T* x = v.data();  // read as double: x[j] converts exactly
  std::unique_ptr<double[]> v_double;  // AsDouble's copy, when one is needed
  double* s = sent.data();
  bool is_dense = false;
  // Scratch of d doubles, every one written before it is read (no zero fill).
  auto scratch = [d]() { return std::unique_ptr<double[]>(new double[d]); };
  switch (o.method) {
    case Feedback::kNone: {
      FT_RETURN_IF_ERROR(c.Encode(AsDouble(v, &v_double), rng, out, sent));
      break;
    }
    case Feedback::kEf14: {
      // p = e + v; Delta = C(p); e = p - Delta (docs/compression.md §2.1; v = gamma g for form A).
      std::unique_ptr<double[]> p = scratch();
      for (size_t j = 0; j < d; ++j) p[j] = e[j] + static_cast<double>(x[j]);
      FT_RETURN_IF_ERROR(c.Encode(absl::Span<const double>(p.get(), d), rng, out, sent));
      st->e.resize(d);
      for (size_t j = 0; j < d; ++j) st->e[j] = p[j] - s[j];
      break;
    }
    case Feedback::kEf21:
    case Feedback::kEf21W:
    case Feedback::kEControl: {
      const bool econtrol = o.method == Feedback::kEControl;
      if (!st->initialised) {
        // First message: the tracker's initialisation h_i^0 = v (dense) or C(v).
        is_dense = o.init == TrackerInit::kDense;
        const Compressor& codec = is_dense ? dense_codec : c;
        if (codec.dim() != 0 && codec.dim() != d)
          return absl::InvalidArgumentError(absl::StrCat(
              "vector of ", d, " values; the codec ", codec.codec(), " is for ", codec.dim()));
        FT_RETURN_IF_ERROR(codec.Encode(AsDouble(v, &v_double), rng, out, sent));
        if (econtrol) {
          // EControl's round 0 sends h_i^0 = g_i^0 and then Delta_i^0 = C(0) = 0
          // (docs/compression.md §2.4), so e_i^1 = e_i^0 + g_i^0 - h_i^0: zero with an exact
          // (f64) initialisation and the wire rounding otherwise (keeps e + h = sum of inputs,
          // the virtual-iterate identity).
          if (st->e.empty()) st->e.assign(d, 0.0);
          for (size_t j = 0; j < d; ++j) st->e[j] = st->e[j] + static_cast<double>(x[j]) - s[j];
        }
        st->h.assign(sent.begin(), sent.end());
        st->initialised = true;
        break;
      }
      // EF21: c = C(v - h); h += c.  EControl: D = C(eta e + v - h); e += v - h - D; h += D.
      const double eta = econtrol ? o.eta : 0.0;
      std::unique_ptr<double[]> u = scratch();
      for (size_t j = 0; j < d; ++j) u[j] = eta * e[j] + static_cast<double>(x[j]) - h[j];
      FT_RETURN_IF_ERROR(c.Encode(absl::Span<const double>(u.get(), d), rng, out, sent));
      if (st->h.empty()) st->h.assign(d, 0.0);
      if (econtrol) {
        if (st->e.empty()) st->e.assign(d, 0.0);
        double* em = st->e.data();
        double* hm = st->h.data();
        for (size_t j = 0; j < d; ++j) {
          em[j] = em[j] + static_cast<double>(x[j]) - hm[j] - s[j];
          hm[j] = hm[j] + s[j];
        }
      } else {
        double* hm = st->h.data();
        for (size_t j = 0; j < d; ++j) hm[j] = hm[j] + s[j];
      }
      break;
    }
  }
  if (dense != nullptr) *dense = is_dense;
  return absl::OkStatus();
}

}  // namespace

absl::Status FeedbackStep(const FeedbackOptions& o, const Compressor& c,
                          const Compressor& dense_codec, absl::Span<const double> v,
                          RngStream& rng, FeedbackState* st, Encoded* out,
                          absl::Span<double> sent, bool* dense) {
  return FeedbackStepImpl(o, c, dense_codec, v, rng, st, out, sent, dense);
}

absl::Status FeedbackStep(const FeedbackOptions& o, const Compressor& c,
                          const Compressor& dense_codec, absl::Span<const float> v,
                          RngStream& rng, FeedbackState* st, Encoded* out,
                          absl::Span<double> sent, bool* dense) {
  return FeedbackStepImpl(o, c, dense_codec, v, rng, st, out, sent, dense);
}

TrackerAggregate::TrackerAggregate(size_t dim, uint64_t num_clients, TrackerInit init)
    : h_(dim, 0.0), initialised_(num_clients, false), init_(init) {}

absl::Status TrackerAggregate::Check(ClientId id, bool dense) const {
  if (id >= initialised_.size())
    return absl::InvalidArgumentError(absl::StrCat(
        "client ", id, " is not one of the ", initialised_.size(), " clients of the tracker"));
  if (init_ == TrackerInit::kCompressed) {
    if (dense)
      return absl::InvalidArgumentError(absl::StrCat(
          "client ", id, " sent a dense tracker message, but trackers start from C(v) "
          "(compressed init): every message must be compressed"));
    return absl::OkStatus();
  }
  if (dense && initialised_[id])
    return absl::InvalidArgumentError(absl::StrCat(
        "client ", id, " sent a dense tracker initialisation but is already initialised; "
        "a dense message is only valid as a client's first"));
  if (!dense && !initialised_[id])
    return absl::InvalidArgumentError(absl::StrCat(
        "client ", id, " sent a compressed tracker update before its dense initialisation"));
  return absl::OkStatus();
}

void TrackerAggregate::Add(ClientId id, absl::Span<const double> msg, bool dense,
                           double weight) {
  FT_CHECK_OK(Check(id, dense));
  FT_CHECK(msg.size() == h_.size());
  for (size_t j = 0; j < h_.size(); ++j) h_[j] += weight * msg[j];
  initialised_[id] = true;
}

void TrackerAggregate::Add(ClientId id, ConstVec msg, bool dense, double weight) {
  FT_CHECK_OK(Check(id, dense));
  FT_CHECK(msg.size() == h_.size());
  for (size_t j = 0; j < h_.size(); ++j) h_[j] += weight * static_cast<double>(msg[j]);
  initialised_[id] = true;
}

}  // namespace fedtrain
