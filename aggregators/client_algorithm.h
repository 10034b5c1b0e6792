// The federated-algorithm contract of docs/federated.md §0.1, client side: what a client
// half works with during one task (LocalContext) and the client half itself
// (ClientAlgorithm). Client halves are thread-compatible: LocalUpdate is const and runs
// concurrently for different clients. Pure: no sockets, files or threads of its own.
#ifndef FEDTRAIN_AGGREGATORS_CLIENT_ALGORITHM_H_
#define FEDTRAIN_AGGREGATORS_CLIENT_ALGORITHM_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "aggregators/algorithm.h"
#include "core/rng.h"
#include "core/vec.h"
#include "data/dataset.h"
#include "models/local_sgd.h"
#include "models/trainer.h"
#include "wire/payload.h"

namespace fedtrain {

// What a client half works with during one task.
struct LocalContext {
  Trainer* trainer = nullptr;
  DataView data;
  LocalSgdOptions sgd;   // lr already decayed for this round
  RngStream* rng = nullptr;  // minibatch stream keyed (seed, round, client, kMinibatch)
  uint64_t round = 0;
  ClientId client = 0;
};

struct LocalResult {
  int64_t steps = 0;
  double train_loss = 0.0;
};

class ClientAlgorithm {
 public:
  virtual ~ClientAlgorithm() = default;
  virtual absl::Status LocalUpdate(const Payload& down, LocalContext& ctx, ClientState* state,
                                   Payload* up, LocalResult* result) const = 0;
  // Called by the Worker after the uplink pipeline and before the client's state is saved,
  // with `up` as LocalUpdate produced it and `sent` the same payload exactly as the server will
  // decode it (each part through its codec, bit for bit; scalars copied). Lets a client half
  // advance a tracker of the server's state by what the server actually received, so that
  // e.g. SCAFFOLD's c = (1/N) sum c_i survives a lossy uplink. Default: nothing.
  // Called only for an algorithm whose factory declares AlgorithmTraits::commit_sent (the
  // Worker decodes its message only then), and such an algorithm runs with
  // compression.feedback "none" (refused otherwise at config load): `sent` is then each part's
  // reconstructed value (clipping and any compressor allowed).
  // An error fails the task; the stored state then stays as it was before the task.
  virtual absl::Status CommitSent(const Payload& up, const Payload& sent,
                                  ClientState* state) const {
    (void)up;
    (void)sent;
    (void)state;
    return absl::OkStatus();
  }
};

// The common ending of a client half that sends one vector: up = {part}, no scalars, and the
// local-SGD run's step count and mean loss as the result.
void ReplyWith(std::vector<float> part, const LocalSgdResult& r, Payload* up,
               LocalResult* result);

// The common ending of a client half that sends one vector: up = {part}, no scalars, and the
// local-SGD run's step count and mean loss as the result.
void ReplyWith(std::vector<float> part, const LocalSgdResult& r, Payload* up,
               LocalResult* result);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_CLIENT_ALGORITHM_H_
