#include "server/server_loop.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::StatusOr<ServerLoopResult> RunServerLoop(
    const ServerLoopOptions& o, const ServerLoopParts& parts, ConstVec x0,
    const std::function<void(const RoundSummary&)>& on_round) {
  Coordinator coord(o.coordinator, parts.algorithm, parts.transport, parts.uplink,
                    parts.evaluator, parts.sink, parts.clock, parts.pool);
  FT_RETURN_IF_ERROR(coord.Init(x0));
  ServerLoopResult result;
  if (o.resume) {
    FT_RETURN_IF_ERROR(coord.Restore(*o.resume));
    result.cum_bytes_up = o.resume->cum_bytes_up;
    result.cum_bytes_down = o.resume->cum_bytes_down;
    result.wall_s = o.resume->wall_s;
  }
  const int64_t rounds = o.coordinator.rounds;
  absl::Status checkpoint_status;
  FT_RETURN_IF_ERROR(coord.Run([&](const RoundSummary& s) {
    if (s.test) result.final_test = s.test;
    result.wall_s = s.wall_s;
    result.cum_bytes_up = s.cum_bytes_up;
    result.cum_bytes_down = s.cum_bytes_down;
    const int64_t done = static_cast<int64_t>(s.round) + 1;
    const bool interrupted = o.interrupt != nullptr && o.interrupt->load() != 0;
    if (!o.checkpoint_path.empty() && o.checkpoint_every > 0 && checkpoint_status.ok() &&
        (done % o.checkpoint_every == 0 || done == rounds || interrupted)) {
      absl::StatusOr<CoordinatorSnapshot> snap = coord.Snapshot();
      checkpoint_status = snap.ok() ? SaveCheckpoint(o.checkpoint_path, *snap, o.identity)
                                    : snap.status();
    }
    if (on_round) on_round(s);
  }, [&]() -> absl::Status {
    if (!checkpoint_status.ok()) return checkpoint_status;
    const int signal = o.interrupt != nullptr ? o.interrupt->load() : 0;
    if (signal != 0 && coord.rounds_done() < rounds)
      return absl::CancelledError(absl::StrCat(
          "interrupted (signal ", signal, ") after round ", coord.rounds_done(), " of ", rounds,
          !o.checkpoint_path.empty() && o.checkpoint_every > 0
              ? absl::StrCat("; ", o.checkpoint_path, " holds round ", coord.rounds_done())
              : std::string("; no checkpoint (checkpoint.every is 0)")));
    return absl::OkStatus();
  }));
  // Resumed from a checkpoint taken after the last round: evaluate the final model once more.
  if (!result.final_test && coord.rounds_done() == rounds && o.resume && parts.evaluator) {
    FT_ASSIGN_OR_RETURN(EvalMetrics e, parts.evaluator(coord.model()));
    result.final_test = e;
  }
  result.model.assign(coord.model().begin(), coord.model().end());
  result.rounds = coord.rounds_done();
  result.stop_reason = coord.stop_reason();
  // Stopped early (privacy budget): the model as it stands is the run's result; evaluate it.
  if (!result.stop_reason.empty() && parts.evaluator && coord.rounds_done() > 0) {
    FT_ASSIGN_OR_RETURN(EvalMetrics e, parts.evaluator(coord.model()));
    result.final_test = e;
  }
  result.privacy = coord.privacy_spent();
  return result;
}

}  // namespace fedtrain
