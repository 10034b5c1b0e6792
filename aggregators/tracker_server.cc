#include "aggregators/tracker_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::Status TrackerServer::Init(ConstVec x0, ServerState* s) {
  if (!HasTracker(o_.method))
    return absl::InvalidArgumentError(absl::StrCat("feedback ", FeedbackName(o_.method),
                                                   " keeps no server tracker"));
  if (num_clients_ == 0) return absl::InvalidArgumentError("tracker feedback needs N > 0 clients");
  FT_RETURN_IF_ERROR(inner_->Init(x0, s));
  trackers_.clear();
  for (size_t p = 0; p < inner_->num_up_parts(); ++p)
    trackers_.emplace_back(x0.size(), num_clients_, o_.init);
  return absl::OkStatus();
}

absl::Status TrackerServer::CheckUpdate(const ClientUpdate& u) const {
  FT_RETURN_IF_ERROR(inner_->CheckUpdate(u));
  if (u.parts.size() != trackers_.size())
    return absl::InvalidArgumentError(
        absl::StrCat(u.parts.size(), " up parts; expected ", trackers_.size()));
  for (size_t p = 0; p < trackers_.size(); ++p) {
    const bool dense = p < u.dense.size() && u.dense[p];
    if (absl::Status s = trackers_[p].Check(u.id, dense); !s.ok())
      return absl::InvalidArgumentError(absl::StrCat("part ", p, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status TrackerServer::Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                                   ServerState* s) {
  const double inv_n = 1.0 / static_cast<double>(num_clients_);
  const double share = static_cast<double>(updates.size()) * inv_n;  // |S| / N
  for (const ClientUpdate& u : updates) {
    if (u.parts.size() != trackers_.size())
      return absl::InvalidArgumentError(absl::StrCat("client ", u.id, ": ", u.parts.size(),
                                                     " up parts; expected ", trackers_.size()));
    for (size_t p = 0; p < trackers_.size(); ++p) {
      if (u.parts[p].size() != trackers_[p].dim())
        return absl::InvalidArgumentError(absl::StrCat("client ", u.id, " part ", p, ": ",
                                                       u.parts[p].size(), " floats; model has ",
                                                       trackers_[p].dim()));
      FT_CHECK_OK(trackers_[p].Check(u.id, p < u.dense.size() && u.dense[p]));
    }
  }
  // v[i][p] = h^t + (|S|/N) c_i for every received client, then h += (1/N) c_i in client-id
  // order (the Coordinator sorts `updates`). Coordinates are independent, so the work is split
  // into blocks of coordinates over the pool: within a block, each coordinate sees exactly the
  // sequence of operations of a loop over clients, hence the same bits for any thread count.
  // The v buffers are kept from round to round (every value is written before it is read).
  std::vector<std::vector<std::vector<float>>>& v = scratch_;
  if (v.size() < updates.size()) v.resize(updates.size());
  for (size_t i = 0; i < updates.size(); ++i) {
    v[i].resize(trackers_.size());
    for (size_t p = 0; p < trackers_.size(); ++p) v[i][p].resize(trackers_[p].dim());
  }
  for (size_t p = 0; p < trackers_.size(); ++p) {
    double* h = trackers_[p].mutable_h().data();
    const size_t d = trackers_[p].dim();
    constexpr size_t kBlock = size_t{1} << 14;
    auto block = [&](size_t b) {
      const size_t j0 = b * kBlock, j1 = std::min(d, j0 + kBlock);
      for (size_t i = 0; i < updates.size(); ++i) {
        const float* c = updates[i].parts[p].data();
        float* out = v[i][p].data();
        for (size_t j = j0; j < j1; ++j)
          out[j] = static_cast<float>(h[j] + share * static_cast<double>(c[j]));
      }
      for (size_t i = 0; i < updates.size(); ++i) {
        const float* c = updates[i].parts[p].data();
        for (size_t j = j0; j < j1; ++j) h[j] += inv_n * static_cast<double>(c[j]);
      }
    };
    const size_t blocks = (d + kBlock - 1) / kBlock;
    if (info.pool != nullptr && blocks > 1) {
      info.pool->ParallelFor(blocks, block);
    } else {
      for (size_t b = 0; b < blocks; ++b) block(b);
    }
    for (const ClientUpdate& u : updates) trackers_[p].mutable_initialised()[u.id] = true;
  }
  std::vector<ClientUpdate> inner_updates(updates.begin(), updates.end());
  for (size_t i = 0; i < inner_updates.size(); ++i) {
    inner_updates[i].parts.clear();
    for (size_t p = 0; p < trackers_.size(); ++p) inner_updates[i].parts.push_back(v[i][p]);
    inner_updates[i].dense.clear();
  }
  return inner_->Update(inner_updates, info, s);
}

absl::Status TrackerServer::SaveExtraState(
    std::map<std::string, std::vector<double>>* out) const {
  FT_RETURN_IF_ERROR(inner_->SaveExtraState(out));
  for (size_t p = 0; p < trackers_.size(); ++p) {
    const TrackerAggregate& t = trackers_[p];
    (*out)[absl::StrCat("tracker.", p, ".h")].assign(t.h().begin(), t.h().end());
    std::vector<double>& bits = (*out)[absl::StrCat("tracker.", p, ".initialised")];
    bits.resize(t.num_clients());
    for (uint64_t i = 0; i < t.num_clients(); ++i) bits[i] = t.initialised(i) ? 1.0 : 0.0;
  }
  return absl::OkStatus();
}

absl::Status TrackerServer::LoadExtraState(const std::map<std::string, std::vector<double>>& in) {
  // Check every tracker entry, then let the wrapped algorithm take the rest, and only then
  // change the trackers: a refused checkpoint leaves this server as it was.
  std::map<std::string, std::vector<double>> rest = in;
  std::vector<std::pair<const std::vector<double>*, const std::vector<double>*>> found;
  for (size_t p = 0; p < trackers_.size(); ++p) {
    const std::vector<double>* entries[2] = {nullptr, nullptr};
    const char* names[2] = {"h", "initialised"};
    const size_t want[2] = {trackers_[p].dim(), trackers_[p].num_clients()};
    for (int k = 0; k < 2; ++k) {
      const std::string key = absl::StrCat("tracker.", p, ".", names[k]);
      auto it = in.find(key);
      if (it == in.end() || it->second.size() != want[k])
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint: ", key, it == in.end() ? " is missing" : " has the wrong size",
            " (expected ", want[k], " values)"));
      entries[k] = &it->second;
      rest.erase(key);
    }
    found.emplace_back(entries[0], entries[1]);
  }
  FT_RETURN_IF_ERROR(inner_->LoadExtraState(rest));
  for (size_t p = 0; p < trackers_.size(); ++p) {
    trackers_[p].mutable_h() = *found[p].first;
    for (size_t i = 0; i < found[p].second->size(); ++i)
      trackers_[p].mutable_initialised()[i] = (*found[p].second)[i] != 0.0;
  }
  return absl::OkStatus();
}

absl::Status CheckFeedback(const v1::ExperimentConfig& cfg, const AlgorithmTraits& traits) {
  const std::string& fb = cfg.compression().feedback();
  const std::string& name = cfg.algorithm().name();
  if ((fb == "ef21" || fb == "econtrol") &&
      !ReducerIsExactMean(cfg.algorithm().reducer(), nullptr))
    return absl::InvalidArgumentError(absl::StrCat(
        "compression.feedback ", fb, " steps the model by its exact tracker mean, which "
        "algorithm.reducer.name ", cfg.algorithm().reducer().name(),
        " does not compute: use algorithm.reducer.name mean, or compression.feedback ef14 or "
        "none"));
  if (fb == "ef21" || fb == "econtrol") {
    if (!traits.fedavg_server)
      return absl::InvalidArgumentError(absl::StrCat(
          "compression.feedback ", fb, " steps the model by its tracker mean, which needs a "
          "FedAvg-type server half (fedavg, fedprox, dsgd); algorithm.name ", name,
          " is not one: use compression.feedback ef14 or none"));
    if (cfg.algorithm().weighting() != "uniform")
      return absl::InvalidArgumentError(absl::StrCat(
          "compression.feedback ", fb, " tracks the uniform mean over all clients "
          "(docs/compression.md §2.2); set algorithm.weighting to uniform"));
    if (cfg.algorithm().server_lr() != 1.0)
      return absl::InvalidArgumentError(absl::StrCat(
          "compression.feedback ", fb, " steps the model by exactly its tracker mean; "
          "algorithm.server_lr must be 1, got ", cfg.algorithm().server_lr()));
  }
  if (traits.commit_sent && fb != "none")
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.name ", name, " advances its client state by the message the server "
        "decodes, which error feedback turns into a correction: compression.feedback must be "
        "none, got ", fb));
  return absl::OkStatus();
}

std::unique_ptr<ServerAlgorithm> WithFeedbackTracker(std::unique_ptr<ServerAlgorithm> server,
                                                     const FeedbackOptions& o,
                                                     uint64_t num_clients) {
  if (!HasTracker(o.method)) return server;
  return std::make_unique<TrackerServer>(std::move(server), o, num_clients);
}

}  // namespace fedtrain
