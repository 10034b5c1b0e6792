// Fault injection for robustness experiments (docs/robust.md "Attacks"): what a Byzantine
// worker sends in place of the configured faulty clients' updates. Two placements
// (AttackOptions::at), the same bits either way for the update attacks when the uplink is
// lossless (identity codec) and every sampled client answers:
//   server  the Coordinator replaces the faulty clients' decoded updates before aggregation
//           (ApplyAttack): cheap, the harness for simulation studies;
//   worker  the faulty client's Worker sends the attack through the normal uplink
//           (AttackVector): what a real Byzantine `fedtrain worker` does. Omniscient attacks
//           then recompute the honest clients' updates of the round on the worker (it has the
//           model, the seeds and the data), which needs a client half without state.
// Data attacks act on the faulty client's training data and so only on a worker:
//   label_flip      labels y -> C - 1 - y, trained honestly
//   augmented       a fraction rho of the client's images warped by the Lotka-Volterra map
//                   (attacks/augment.h), labels unchanged, trained honestly
// and `stale` (a worker re-sends the honest update it computed stale_rounds participations
// earlier; its first ones send the oldest it has) keeps a history in the client's state.
//
// Attacks (name: what each faulty client's every up part becomes):
//   random_uniform  i.i.d. uniform on [0, 1) per coordinate
//   gaussian        i.i.d. N(0, sigma^2) (sigma default 200)
//   sign_flip       -scale * own vector, or -scale * mean(honest) when omniscient
//   alie            mu - z sigma per coordinate ("A Little Is Enough", Baruch, Baruch,
//                   Goldberg, NeurIPS 2019): mu, sigma = mean and unbiased std of the honest
//                   vectors (own vectors of the faulty clients when not omniscient);
//                   z = Phi^-1((p - s)/p), s = floor(p/2 + 1) - f, unless z is set
//   ipm             -eps * mean(honest) ("Fall of Empires", Xie, Koyejo, Gupta, UAI 2019)
//   crash_zero      the zero vector;  crash_omit: no update at all (the reducer sees p - f)
//   nan             a vector of NaN (exercises the reducers' non-finite policy)
//   partial_drop    own vector with each coordinate set to 0 with probability drop_prob
// Sign convention (AttackOptions::gradient_space): the literature defines the attacks on
// gradients; a client's message is an update, which for one local step of rate 1 is minus
// the gradient. In gradient space (the default) each attack is computed on g = -update and
// sent as -g: random_uniform sends -U[0, 1), alie sends mean + z std of the honest updates
// (= -(mean_g - z std_g)); the odd attacks (sign_flip, ipm, partial_drop, crash_zero) and the
// symmetric ones (gaussian, nan) are the same in both spaces. attack.space "update" applies
// the formulas to the updates as they are.
// Colluding attacks (sign_flip omniscient, alie, ipm) send the same vector from every faulty
// client. Randomness: RngStream(seed, round, client, kAttack). Means and stds accumulate in
// float64 in client-id order. Pure; not thread-safe (one call per round).
#ifndef FEDTRAIN_ATTACKS_ATTACK_H_
#define FEDTRAIN_ATTACKS_ATTACK_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "wire/payload.h"

namespace fedtrain {

enum class AttackAt { kServer, kWorker };

struct AttackOptions {
  std::string name = "none";
  AttackAt at = AttackAt::kServer;
  std::set<ClientId> clients;  // the faulty clients
  uint64_t seed = 0;
  double sigma = 200.0;
  double scale = 1.0;
  bool omniscient = true;
  double z = -1.0;  // alie: < 0 means "from the formula"
  double eps = 0.1;
  double drop_prob = 0.1;
  int64_t stale_rounds = 1;  // stale: how many participations old the re-sent update is
  double rho = 1.0;          // augmented: the fraction of the client's images warped
  bool gradient_space = true;  // attack.space "gradient" (see the sign convention above)
  bool active() const { return name != "none" && !clients.empty(); }
};

// The attack names, for messages.
const std::vector<std::string>& AttackNames();
// Where an attack acts when attack.at is not given: label_flip, augmented and stale on the
// worker, the rest at the server.
AttackAt DefaultAttackAt(const std::string& name);
// "server" / "worker" (and "" for the default) -> AttackAt; InvalidArgument naming attack.at.
absl::StatusOr<AttackAt> ParseAttackAt(const std::string& at, const std::string& name);
// InvalidArgument naming attack.<field> for an unknown name, an out-of-range setting or an
// attack that cannot act where attack.at puts it.
absl::Status ValidateAttack(const AttackOptions& o);
// True for the attacks that replace a faulty client's update vector (not the data attacks,
// not stale, not crash_omit).
bool IsVectorAttack(const std::string& name);
// True for the attacks whose vector depends on other clients' updates of the round (alie,
// ipm, omniscient sign_flip): the reference set is the honest clients of the round when
// omniscient (the faulty ones' own honest updates otherwise).
bool NeedsReference(const AttackOptions& o);

// Per-coordinate float64 mean (and, for alie, unbiased standard deviation) of the reference
// vectors, accumulated in the order given (callers pass client-id order).
struct ReferenceStats {
  std::vector<double> mean, stdev;
};
ReferenceStats ComputeReferenceStats(const AttackOptions& o, absl::Span<const ConstVec> ref);

// The vector faulty client `id` sends in `round` for a vector attack: `own` is its honest
// update, `stats` the reference statistics when NeedsReference, z ALIE's factor. Randomness:
// RngStream(seed, round, id, kAttack). Writes own.size() values to *out.
absl::Status AttackVector(const AttackOptions& o, uint64_t round, ClientId id, double z,
                          const ReferenceStats& stats, ConstVec own, std::vector<float>* out);
// ALIE's z for this round: o.z when set, else AlieZ(p, f); FailedPrecondition when that is
// infinite (f > floor(p/2): no finite z satisfies the formula). o.z for other attacks.
absl::StatusOr<double> RoundZ(const AttackOptions& o, int64_t p, int64_t f);

// ALIE's z for p workers of which f are faulty: Phi^-1((p - s)/p), s = floor(p/2 + 1) - f.
double AlieZ(int64_t p, int64_t f);

// The server placement: replaces (or, for crash_omit, removes) the updates of faulty clients
// in `updates` (sorted by client id). Does nothing unless o.at is kServer. New vectors live in *storage, which must outlive the updates' use. Returns
// how many updates were attacked this round.
absl::StatusOr<int64_t> ApplyAttack(const AttackOptions& o, uint64_t round,
                                    std::vector<ClientUpdate>* updates,
                                    std::vector<std::vector<float>>* storage);

}  // namespace fedtrain

#endif  // FEDTRAIN_ATTACKS_ATTACK_H_
