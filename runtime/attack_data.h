// The data attacks (attacks/attack.h): a faulty client's training data as a Byzantine worker
// trains on it. label_flip maps every label y to C - 1 - y; augmented warps a fraction rho of
// the client's images by the Lotka-Volterra map (attacks/augment.h), each image with a warp
// length T drawn uniformly from the ten of the reference. The draws come from
// RngStream(attack seed, kDataAttackRound, client, kAttack), one pair per sample in the
// client's data order, so the simulation and a deployed worker see the same images.
#ifndef FEDTRAIN_RUNTIME_ATTACK_DATA_H_
#define FEDTRAIN_RUNTIME_ATTACK_DATA_H_

#include "absl/status/status.h"
#include "attacks/attack.h"
#include "client/worker.h"
#include "fedtrain/v1/config.pb.h"
#include "runtime/experiment.h"

namespace fedtrain {

// The "round" of the data attacks' stream: no training round reaches it.
constexpr uint64_t kDataAttackRound = ~uint64_t{0};

// InvalidArgument naming the fields when the config's data cannot carry its data attack
// (augmented needs images: data.dataset fashion_mnist).
absl::Status CheckDataAttack(const v1::ExperimentConfig& cfg);

// `base` with the faulty clients' data transformed when `a` is a data attack placed on the
// worker; `base` itself otherwise. Each returned function owns a buffer that the last
// DataView it returned points into (one function per Worker, as ClientDataOf).
ClientDataFn WithDataAttack(ClientDataFn base, const AttackOptions& a, const ExperimentData& data);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_ATTACK_DATA_H_
