// The server's side of a run, the same for a simulation and a deployed server: a Coordinator
// around a server half and a transport, run for the remaining rounds, with a checkpoint every
// `checkpoint_every` rounds and after the last, an optional resume from a snapshot, and the
// final evaluation of a run resumed after its last round.
// Not thread-safe: one thread calls Run. Borrows everything it is given.
#ifndef FEDTRAIN_SERVER_SERVER_LOOP_H_
#define FEDTRAIN_SERVER_SERVER_LOOP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/algorithm.h"
#include "comm/transport.h"
#include "compression/uplink_codec.h"
#include <atomic>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/thread_pool.h"
#include "server/checkpoint.h"
#include "server/coordinator.h"

namespace fedtrain {

struct ServerLoopOptions {
  CoordinatorOptions coordinator;
  // Checkpoints: written to `checkpoint_path` (when not empty) every `checkpoint_every`
  // rounds (when > 0) and after the last, tied to `identity`.
  std::string checkpoint_path;
  int64_t checkpoint_every = 0;
  CheckpointIdentity identity;
  // Continue from this snapshot instead of round 0.
  std::shared_ptr<const CoordinatorSnapshot> resume;
  // When not null and non-zero after a round (set from another thread, e.g. to the number of
  // the signal that asked for it), the run stops there: a checkpoint of that round is
  // written (when checkpoints are on and that round did not write one) and the loop returns
  // Cancelled naming the round.
  const std::atomic<int>* interrupt = nullptr;
};

struct ServerLoopResult {
  std::vector<float> model;  // the final global model
  std::optional<EvalMetrics> final_test;
  int64_t rounds = 0;
  double wall_s = 0.0;
  uint64_t cum_bytes_up = 0, cum_bytes_down = 0;
  std::string stop_reason;              // Coordinator::stop_reason()
  std::optional<DpGuarantee> privacy;   // the guarantee after the last round (privacy runs)
};

struct ServerLoopParts {
  ServerAlgorithm* algorithm = nullptr;
  ServerTransport* transport = nullptr;
  const UplinkCodec* uplink = nullptr;
  Evaluator evaluator;                      // may be empty
  MetricsSink* sink = nullptr;              // may be null
  const Clock* clock = nullptr;
  ThreadPool* pool = nullptr;               // may be null
};

// Runs the rounds from x0 (or from the snapshot in `o.resume`), calling `on_round` (may be
// null) after each round and its checkpoint. A checkpoint that cannot be written stops the
// run with that error after the round.
absl::StatusOr<ServerLoopResult> RunServerLoop(
    const ServerLoopOptions& o, const ServerLoopParts& parts, ConstVec x0,
    const std::function<void(const RoundSummary&)>& on_round);

}  // namespace fedtrain

#endif  // FEDTRAIN_SERVER_SERVER_LOOP_H_
