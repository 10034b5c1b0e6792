// Error feedback (docs/compression.md §2): EF14, EF21, EF21-W and EControl, as explicit
// state plus pure step functions. Pure: no sockets, threads, files or clocks.
//
// State is data (FeedbackState on the worker, TrackerAggregate on the server), never hidden
// in a compressor, so it can be checkpointed, stored per client and spilled to disk. State
// vectors are double (docs/compression.md §0 recommends double for e_i, g_i, h_i and server
// averages; this deviates from docs/maintainers.md's float sketch on purpose).
//
// One round structure serves every method (the "pipeline" order): the worker computes its
// vector v at the model it was sent, sends one message, and the server folds the messages in
// before it moves the model. For the tracker methods (EF21, EF21-W, EControl) a client's
// first message is its dense tracker initialisation (h_i^0 = v, docs/compression.md §2.2/§2.4
// "dense init"); the server then steps with the tracker average. This gives exactly the iterates of
// the spec's formulation (EF21: x^{t+1} = x^t - gamma g^t with g^0 = mean grad f_i(x^0)).
#ifndef FEDTRAIN_COMPRESSION_ERROR_FEEDBACK_H_
#define FEDTRAIN_COMPRESSION_ERROR_FEEDBACK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compression/compressor.h"
#include "core/rng.h"
#include "core/vec.h"

namespace fedtrain {

enum class Feedback {
  kNone,      // send C(v)
  kEf14,      // p = e + v; send C(p); e = p - C(p)               (docs/compression.md §2.1; form A when v = gamma g)
  kEf21,      // send c = C(v - h); h += c                        (docs/compression.md §2.2)
  kEf21W,     // as EF21; v is already scaled by 1/(n w_i)         (docs/compression.md §2.3)
  kEControl,  // send D = C(eta e + v - h); e += v - h - D; h += D  (docs/compression.md §2.4)
};

// "none", "ef14", "ef21", "ef21w", "econtrol"; InvalidArgument naming compression.feedback
// and listing the known names otherwise.
absl::StatusOr<Feedback> ParseFeedback(const std::string& name);
const char* FeedbackName(Feedback f);
// True for EF21, EF21-W and EControl (server keeps a tracker average).
bool HasTracker(Feedback f);

// How the tracker methods start (docs/compression.md §2.2 "alternative inits").
enum class TrackerInit {
  kDense,       // first message is v itself, uncompressed (default)
  kCompressed,  // first message is C(v): h_i^0 = C(grad f_i(x^0)); no dense round
};

struct FeedbackOptions {
  Feedback method = Feedback::kNone;
  double eta = 0.0;  // EControl feedback strength, in [0, 1)
  TrackerInit init = TrackerInit::kDense;
};

// InvalidArgument naming compression.eta when eta is outside [0, 1).
absl::Status ValidateFeedbackOptions(const FeedbackOptions& o);

// EF21's theory constant xi(delta) = sqrt(1 - delta) / (1 - sqrt(1 - delta)) (docs/compression.md
// §2.2; about 2/delta - 1 for small delta, 0 for delta = 1). delta must be in (0, 1].
double Ef21Xi(double delta);
// The EF21 step bound gamma = 1 / (L + l_mean * xi(delta)): l_mean = L_QM for EF21, L_AM for
// EF21-W (docs/compression.md §2.2, §2.3).
double Ef21TheoryStep(double l, double l_mean, double delta);

// One worker's feedback state for one vector of length d.
struct FeedbackState {
  std::vector<double> e;  // EF14 and EControl: accumulated compression error (empty = 0)
  std::vector<double> h;  // EF21, EF21-W, EControl: the tracker h_i (g_i in EF21's notation)
  bool initialised = false;  // tracker methods: the first message has been sent
};

// The worker's step for this round's vector `v`: writes the message into `out` and updates
// `st` with the decoded message (`sent`, length d, receives it too). `dense_codec` encodes
// the tracker's dense initialisation (identity, float32 or float64 like the compressor);
// `*dense` tells whether this message is that initialisation. On error `st` is unchanged.
absl::Status FeedbackStep(const FeedbackOptions& o, const Compressor& c,
                          const Compressor& dense_codec, absl::Span<const double> v,
                          RngStream& rng, FeedbackState* st, Encoded* out,
                          absl::Span<double> sent, bool* dense);
// The same for float input (read as double, exactly): the uplink's unclipped vectors need no
// double copy first.
absl::Status FeedbackStep(const FeedbackOptions& o, const Compressor& c,
                          const Compressor& dense_codec, absl::Span<const float> v,
                          RngStream& rng, FeedbackState* st, Encoded* out,
                          absl::Span<double> sent, bool* dense);

// The server half of the tracker methods: h = sum_i p_i h_i over all n clients, kept in
// double, with p_i = 1/n (EF21, EControl; EF21-W passes w_i). Absent clients keep their
// trackers: h moves by p_i * message for each client heard from (docs/compression.md §2.2 partial
// participation). It also enforces the init protocol: a dense message only as a client's
// first, a compressed one only after it (with TrackerInit::kDense).
class TrackerAggregate {
 public:
  TrackerAggregate(size_t dim, uint64_t num_clients, TrackerInit init);

  // Checks one client's message without changing anything (InvalidArgument naming the
  // client: unknown id, dense message from an initialised client, compressed message before
  // the client's dense initialisation).
  absl::Status Check(ClientId id, bool dense) const;
  // Adds weight * msg to h and records the client as initialised. Call after Check().
  void Add(ClientId id, absl::Span<const double> msg, bool dense, double weight);
  void Add(ClientId id, ConstVec msg, bool dense, double weight);

  absl::Span<const double> h() const { return h_; }
  size_t dim() const { return h_.size(); }
  uint64_t num_clients() const { return initialised_.size(); }
  bool initialised(ClientId id) const { return initialised_[id]; }
  // For checkpoints: the state is (h, initialised bits).
  std::vector<double>& mutable_h() { return h_; }
  std::vector<bool>& mutable_initialised() { return initialised_; }

 private:
  std::vector<double> h_;
  std::vector<bool> initialised_;
  TrackerInit init_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_ERROR_FEEDBACK_H_
