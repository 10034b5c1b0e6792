// An example algorithm plug-in, built outside fedtrain: "normclip_fedavg", FedAvg whose
// server first clips every client's delta to an L2 norm of at most `max_norm` (a common
// guard against a few clients with huge updates), then takes the weighted mean as FedAvg.
// Parameters: algorithm.params.max_norm (> 0, required); algorithm.server_lr and
// algorithm.weighting as for FedAvg. The client half is FedAvg's.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/fedavg.h"
#include "aggregators/plugin.h"
#include "aggregators/weighted_mean.h"

namespace {

using fedtrain::Cfg;

class NormClipServer final : public fedtrain::ServerAlgorithm {
 public:
  NormClipServer(double max_norm, double server_lr, std::string weighting)
      : max_norm_(max_norm), server_lr_(server_lr), weighting_(std::move(weighting)) {}

  absl::Status Init(fedtrain::ConstVec x0, fedtrain::ServerState* s) override {
    s->x.assign(x0.begin(), x0.end());
    return absl::OkStatus();
  }
  absl::Status DownPayload(const fedtrain::ServerState& s, fedtrain::Payload* down) const override {
    down->parts.assign(1, s.x);
    return absl::OkStatus();
  }
  absl::Status Update(absl::Span<const fedtrain::ClientUpdate> updates,
                      const fedtrain::RoundInfo& info, fedtrain::ServerState* s) override {
    if (updates.empty()) return absl::OkStatus();
    std::vector<double> w;
    if (absl::Status st = fedtrain::AggregationWeights(updates, weighting_, &w); !st.ok()) return st;
    // Clip copies of the deltas (the updates are read-only views).
    std::vector<std::vector<float>> clipped;
    std::vector<fedtrain::ConstVec> views;
    for (const fedtrain::ClientUpdate& u : updates) {
      fedtrain::ConstVec d = u.parts[0];
      double sq = 0.0;
      for (float v : d) sq += static_cast<double>(v) * v;
      const double norm = std::sqrt(sq);
      const float scale = norm > max_norm_ ? static_cast<float>(max_norm_ / norm) : 1.0f;
      clipped.emplace_back(d.begin(), d.end());
      for (float& v : clipped.back()) v *= scale;
    }
    for (const auto& c : clipped) views.push_back(c);
    std::vector<float> mean(s->x.size());
    if (absl::Status st = fedtrain::WeightedMean(views, w, absl::MakeSpan(mean), info.pool); !st.ok())
      return st;
    for (size_t j = 0; j < mean.size(); ++j) s->x[j] += static_cast<float>(server_lr_) * mean[j];
    return absl::OkStatus();
  }

 private:
  double max_norm_, server_lr_;
  std::string weighting_;
};

class NormClipFactory final : public fedtrain::AlgorithmFactory {
 public:
  std::string name() const override { return "normclip_fedavg"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override {
    auto it = c.params().fields().find("max_norm");
    if (it == c.params().fields().end() || !(it->second.number_value() > 0))
      return absl::InvalidArgumentError(
          "normclip_fedavg needs algorithm.params.max_norm > 0 (e.g. --set algorithm.params.max_norm=1)");
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<fedtrain::ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    if (absl::Status s = Validate(c); !s.ok()) return s;
    return std::unique_ptr<fedtrain::ServerAlgorithm>(new NormClipServer(
        c.params().fields().at("max_norm").number_value(), c.server_lr(),
        c.weighting().empty() ? std::string("samples") : c.weighting()));
  }
  absl::StatusOr<std::unique_ptr<fedtrain::ClientAlgorithm>> MakeClient(const Cfg&) const override {
    return std::unique_ptr<fedtrain::ClientAlgorithm>(new fedtrain::FedAvgClient());
  }
};

}  // namespace

FEDTRAIN_PLUGIN(registry) { return registry->Register(std::make_unique<NormClipFactory>()); }
