// Server half of the tracker error-feedback methods (EF21, EControl; docs/compression.md
// §2.2, §2.4) around a FedAvg-type server half.
//
// For every up part it keeps the tracker average h = (1/N) sum_i h_i over all N clients
// (TrackerAggregate, double). A client's message is the increment of its own tracker (its
// dense initialisation the first time, then C(...)); absent clients keep their trackers, so
// h moves by (1/N) sum_{i in S} c_i (docs/compression.md §2.2, partial participation). The wrapped
// algorithm is handed, for each received client i,
//     v_i = h^t + (|S|/N) c_i,
// whose uniform mean over the |S| received clients is exactly h^{t+1}: FedAvg with uniform
// weights and server_lr 1 then steps x <- x + h^{t+1}, which is EF21's / EControl's server
// step in the pipeline's sign convention (updates are y - x). Config validation requires
// algorithm.weighting = uniform with these methods. With no update in a round the wrapped
// algorithm decides (FedAvg does not move).
// The wrapper is exact only around such a server half: CheckFeedback refuses, at config load,
// a tracker method with any other algorithm (AlgorithmTraits::fedavg_server), weighting or
// server_lr, naming the fields.
//
// CheckUpdate() enforces the init protocol before anything changes: a dense message only as
// a client's first, and (with dense init) a compressed one only after it.
// Not thread-safe (the Coordinator's round loop owns it).
#ifndef FEDTRAIN_AGGREGATORS_TRACKER_SERVER_H_
#define FEDTRAIN_AGGREGATORS_TRACKER_SERVER_H_

#include <memory>
#include <vector>

#include "aggregators/algorithm.h"
#include "aggregators/registry.h"
#include "compression/error_feedback.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

class TrackerServer final : public ServerAlgorithm {
 public:
  TrackerServer(std::unique_ptr<ServerAlgorithm> inner, FeedbackOptions o, uint64_t num_clients)
      : inner_(std::move(inner)), o_(o), num_clients_(num_clients) {}

  absl::Status Init(ConstVec x0, ServerState* s) override;
  size_t num_up_parts() const override { return inner_->num_up_parts(); }
  absl::Status DownPayload(const ServerState& s, Payload* down) const override {
    return inner_->DownPayload(s, down);
  }
  absl::Status CheckUpdate(const ClientUpdate& u) const override;
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

  // Per part p: "tracker.<p>.h" (h) and "tracker.<p>.initialised" (1 or 0 per client), then
  // the wrapped algorithm's own entries.
  absl::Status SaveExtraState(std::map<std::string, std::vector<double>>* out) const override;
  absl::Status LoadExtraState(const std::map<std::string, std::vector<double>>& in) override;

  // One tracker per up part (for tests and checkpoints).
  const std::vector<TrackerAggregate>& trackers() const { return trackers_; }

 private:
  std::unique_ptr<ServerAlgorithm> inner_;
  FeedbackOptions o_;
  uint64_t num_clients_;
  std::vector<TrackerAggregate> trackers_;
  std::vector<std::vector<std::vector<float>>> scratch_;  // Update's per-client vectors
};

// Whether the config's compression.feedback fits its algorithm: a tracker method (ef21,
// econtrol) needs a FedAvg-type server half (traits.fedavg_server), algorithm.weighting
// "uniform" and algorithm.server_lr 1; an algorithm whose client half uses CommitSent
// (traits.commit_sent) needs feedback "none". InvalidArgument naming both fields.
absl::Status CheckFeedback(const v1::ExperimentConfig& cfg, const AlgorithmTraits& traits);

// `server` wrapped in a TrackerServer when `o.method` has a tracker, else `server` itself.
std::unique_ptr<ServerAlgorithm> WithFeedbackTracker(std::unique_ptr<ServerAlgorithm> server,
                                                     const FeedbackOptions& o,
                                                     uint64_t num_clients);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_TRACKER_SERVER_H_
