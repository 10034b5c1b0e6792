#include "aggregators/client_algorithm.h"

#include "absl/strings/str_cat.h"

namespace fedtrain {

absl::Status AggregationWeights(absl::Span<const ClientUpdate> updates, const std::string& rule,
                                std::vector<double>* w) {
  w->assign(updates.size(), 0.0);
  if (updates.empty()) return absl::OkStatus();
  if (rule == "uniform") {
    for (double& x : *w) x = 1.0 / static_cast<double>(updates.size());
    return absl::OkStatus();
  }
  if (rule != "samples")
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.weighting must be samples or uniform, got '", rule, "'"));
  double total = 0.0;
  for (const ClientUpdate& u : updates) total += static_cast<double>(u.num_samples);
  if (total <= 0.0)
    return absl::InvalidArgumentError("sample-weighted aggregation with zero samples in total");
  for (size_t i = 0; i < updates.size(); ++i)
    (*w)[i] = static_cast<double>(updates[i].num_samples) / total;
  return absl::OkStatus();
}

void ReplyWith(std::vector<float> part, const LocalSgdResult& r, Payload* up,
               LocalResult* result) {
  up->parts.clear();
  up->parts.push_back(std::move(part));
  up->scalars.clear();
  result->steps = r.steps;
  result->train_loss = r.mean_loss;
}

std::vector<uint64_t> ClientIds(absl::Span<const ClientUpdate> updates) {
  std::vector<uint64_t> ids;
  ids.reserve(updates.size());
  for (const ClientUpdate& u : updates) ids.push_back(u.id);
  return ids;
}

ReduceContext RoundReduceContext(const RoundInfo& info, ServerState* s, const std::string& key,
                                 const std::vector<uint64_t>& ids) {
  ReduceContext ctx;
  ctx.round = info.round;
  ctx.pool = info.pool;
  ctx.ids = ids;
  ctx.state = &s->vectors;
  ctx.state_key = kReducerStatePrefix + key;
  ctx.diagnostics = info.diagnostics;
  return ctx;
}

}  // namespace fedtrain
