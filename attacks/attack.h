// Fault injection for robustness experiments (docs/robust.md "Attacks"): the updates of the
// configured faulty clients are replaced, at the server, before the round's aggregation, by
// what a Byzantine worker would send. Applied in the Coordinator, so a simulated run and a
// deployed run with the same config give the same bits. Omniscient attacks see the honest
// updates of the round (the strongest adversary the literature assumes).
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
#include "wire/payload.h"

namespace fedtrain {

struct AttackOptions {
  std::string name = "none";
  std::set<ClientId> clients;  // the faulty clients
  uint64_t seed = 0;
  double sigma = 200.0;
  double scale = 1.0;
  bool omniscient = true;
  double z = -1.0;  // alie: < 0 means "from the formula"
  double eps = 0.1;
  double drop_prob = 0.1;
  bool active() const { return name != "none" && !clients.empty(); }
};

// The attack names, for messages.
const std::vector<std::string>& AttackNames();
// InvalidArgument naming attack.<field> for an unknown name or an out-of-range setting.
absl::Status ValidateAttack(const AttackOptions& o);

// ALIE's z for p workers of which f are faulty: Phi^-1((p - s)/p), s = floor(p/2 + 1) - f.
double AlieZ(int64_t p, int64_t f);

// Replaces (or, for crash_omit, removes) the updates of faulty clients in `updates` (sorted
// by client id). New vectors live in *storage, which must outlive the updates' use. Returns
// how many updates were attacked this round.
absl::StatusOr<int64_t> ApplyAttack(const AttackOptions& o, uint64_t round,
                                    std::vector<ClientUpdate>* updates,
                                    std::vector<std::vector<float>>* storage);

}  // namespace fedtrain

#endif  // FEDTRAIN_ATTACKS_ATTACK_H_
