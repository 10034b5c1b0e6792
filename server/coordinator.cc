#include "server/coordinator.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "compression/payload_codec.h"
#include "core/rng.h"
#include "core/status_macros.h"

namespace fedtrain {

std::vector<ClientId> SampleClients(uint64_t seed, uint64_t round, int64_t n, int64_t m) {
  FT_CHECK(n > 0 && m > 0 && m <= n);
  std::vector<ClientId> out;
  out.reserve(m);
  if (m == n) {
    for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<ClientId>(i));
    return out;
  }
  RngStream rng = RngStream::For(seed, round, 0, Purpose::kSampling);
  absl::flat_hash_set<ClientId> chosen;
  chosen.reserve(m);
  for (int64_t j = n - m; j < n; ++j) {
    const ClientId t = rng.UniformInt(static_cast<uint64_t>(j) + 1);
    chosen.insert(chosen.contains(t) ? static_cast<ClientId>(j) : t);
  }
  out.assign(chosen.begin(), chosen.end());
  std::sort(out.begin(), out.end());
  return out;
}

Coordinator::Coordinator(CoordinatorOptions opts, ServerAlgorithm* algo,
                         ServerTransport* transport, const UplinkCodec* uplink,
                         Evaluator evaluator, MetricsSink* sink, const Clock* clock,
                         ThreadPool* pool)
    : opts_(std::move(opts)), algo_(algo), transport_(transport), uplink_(uplink),
      evaluator_(std::move(evaluator)), sink_(sink), clock_(clock), pool_(pool) {}

absl::Status Coordinator::Init(ConstVec x0) {
  if (opts_.num_clients <= 0 || opts_.clients_per_round <= 0 ||
      opts_.clients_per_round > opts_.num_clients)
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot sample ", opts_.clients_per_round, " of ", opts_.num_clients, " clients"));
  FT_RETURN_IF_ERROR(algo_->Init(x0, &state_));
  state_.round = 0;
  start_ = clock_->Now();
  initialised_ = true;
  return absl::OkStatus();
}

absl::StatusOr<RoundSummary> Coordinator::RunRound() {
  FT_CHECK(initialised_);
  const uint64_t round = state_.round;
  const size_t dim = state_.x.size();
  RoundSummary sum;
  sum.round = round;
  sum.lr = opts_.lr * std::pow(opts_.lr_decay, static_cast<double>(round));

  // 1. Select and broadcast.
  int64_t to_sample = opts_.clients_per_round;
  if (opts_.over_selection > 0) {
    // ceil(cpr * over) in integers, with over taken to 6 decimals: in floating point
    // 100 * 1.1 is 110.00000000000001, whose ceiling would sample one client too many.
    const int64_t ppm = std::llround(opts_.over_selection * 1e6);
    const int64_t extra = (opts_.clients_per_round * ppm + 999999) / 1000000;
    to_sample = std::min<int64_t>(opts_.num_clients, opts_.clients_per_round + extra);
  }
  std::vector<ClientId> sampled =
      SampleClients(opts_.sampling_seed, round, opts_.num_clients, to_sample);
  // The round closes early once this many updates were accepted (over-selection only).
  const size_t enough = static_cast<size_t>(opts_.clients_per_round);
  sum.sampled = static_cast<int64_t>(sampled.size());
  Payload down;
  FT_RETURN_IF_ERROR(algo_->DownPayload(state_, &down));
  v1::TaskMsg proto_task;
  proto_task.set_round(round);
  proto_task.set_lr(sum.lr);
  proto_task.set_seed(opts_.seed);
  {
    IdentityCompressor down_codec;  // downlink is uncompressed in this build
    RngStream unused = RngStream::For(opts_.seed, round, 0, Purpose::kCompression);
    FT_RETURN_IF_ERROR(EncodePayload(down, down_codec, unused, proto_task.mutable_down()));
  }
  absl::flat_hash_set<ClientId> pending;
  RoundInfo info;
  info.round = round;
  info.num_clients = static_cast<uint64_t>(opts_.num_clients);
  info.pool = pool_;
  for (ClientId id : sampled) {
    v1::TaskMsg t = proto_task;
    t.set_client_id(id);
    if (opts_.track_accepted) {
      auto it = accepted_through_.find(id);
      t.set_accepted_through(it == accepted_through_.end() ? 0 : it->second);
    }
    sum.bytes_down += t.ByteSizeLong();
    if (absl::Status s = transport_->SendTask(std::move(t)); !s.ok()) {
      info.dropped.push_back(id);
      sum.rejections.push_back(absl::StrCat("client ", id, ": task not delivered: ", s.ToString()));
      continue;
    }
    pending.insert(id);
  }
  info.sampled = sampled;

  // 2. Collect until every pending client replied or the deadline passed.
  std::map<ClientId, Payload> accepted;  // ordered by client id: the reduction order
  struct Meta {
    uint64_t num_samples;
    int64_t steps;
    double train_loss;
    std::vector<bool> dense;
  };
  std::map<ClientId, Meta> meta;
  const absl::Time deadline = clock_->Now() + opts_.round_timeout;
  while (!pending.empty() && accepted.size() < enough) {
    absl::StatusOr<ReceivedUpdate> got = transport_->ReceiveUpdate(deadline);
    if (!got.ok()) {
      if (got.status().code() != absl::StatusCode::kDeadlineExceeded) return got.status();
      for (ClientId id : pending) {
        info.dropped.push_back(id);
        sum.rejections.push_back(absl::StrCat("client ", id, ": no reply by the round deadline"));
      }
      break;
    }
    const v1::UpdateMsg& m = got->msg;
    sum.bytes_up += SerializedSize(*got);
    const ClientId id = m.client_id();
    if (m.round() != round) {
      sum.rejections.push_back(absl::StrCat("client ", id, ": update for round ", m.round(),
                                            ", current round is ", round));
      continue;  // a stale reply: the client may still answer this round
    }
    if (!pending.contains(id)) {
      sum.rejections.push_back(
          absl::StrCat("client ", id, ": was not asked this round or already replied"));
      continue;
    }
    pending.erase(id);
    auto reject = [&](const std::string& why) {
      info.rejected.push_back(id);
      sum.rejections.push_back(absl::StrCat("client ", id, ": ", why));
    };
    if (!m.error().empty()) {
      reject(absl::StrCat("worker failed: ", m.error()));
      continue;
    }
    if (m.num_samples() == 0) {
      reject("reported 0 training samples");
      continue;
    }
    if (!std::isfinite(m.train_loss())) {
      reject("reported a non-finite training loss");
      continue;
    }
    Payload p;
    std::vector<bool> dense;
    if (absl::Status s = uplink_->Decode(m.up(), got->part_data, algo_->num_up_parts(), dim, &p,
                                         &dense);
        !s.ok()) {
      reject(std::string(s.message()));
      continue;
    }
    {
      ClientUpdate probe;
      probe.id = id;
      probe.num_samples = m.num_samples();
      probe.steps = static_cast<int64_t>(m.local_steps());
      for (const std::vector<float>& part : p.parts) probe.parts.push_back(part);
      probe.dense = dense;
      if (absl::Status s = algo_->CheckUpdate(probe); !s.ok()) {
        reject(std::string(s.message()));
        continue;
      }
    }
    accepted.emplace(id, std::move(p));
    meta[id] = {m.num_samples(), static_cast<int64_t>(m.local_steps()), m.train_loss(),
                std::move(dense)};
  }
  if (!pending.empty() && accepted.size() >= enough) {
    for (ClientId id : pending) {
      info.dropped.push_back(id);
      sum.rejections.push_back(absl::StrCat("client ", id, ": over-selected, the round closed "
                                            "with its ", enough, " updates first"));
    }
  }
  for (std::string& why : transport_->TakeRefused()) {
    ++sum.refused;
    sum.rejections.push_back(absl::StrCat("transport refused a message: ", why));
  }
  std::sort(info.dropped.begin(), info.dropped.end());
  std::sort(info.rejected.begin(), info.rejected.end());

  // 3. Aggregate in client-id order (the loss too, so metrics are reproducible bit for bit).
  std::vector<ClientUpdate> updates;
  updates.reserve(accepted.size());
  double loss_sum = 0.0, loss_weight = 0.0;
  for (const auto& [id, p] : accepted) {
    const Meta& mi = meta.at(id);
    loss_sum += mi.train_loss * static_cast<double>(mi.num_samples);
    loss_weight += static_cast<double>(mi.num_samples);
    ClientUpdate u;
    u.id = id;
    u.num_samples = mi.num_samples;
    u.steps = mi.steps;
    for (const std::vector<float>& part : p.parts) u.parts.push_back(part);
    u.dense = mi.dense;
    updates.push_back(std::move(u));
  }
  if (static_cast<int64_t>(updates.size()) < opts_.min_updates) {
    std::string why;
    for (size_t i = 0; i < sum.rejections.size() && i < 5; ++i)
      absl::StrAppend(&why, i ? "; " : "", sum.rejections[i]);
    return absl::UnavailableError(absl::StrCat(
        "round ", round, " closed with ", updates.size(), " accepted updates of ",
        sampled.size(), " sampled clients, below federation.min_updates (", opts_.min_updates,
        "); the model was not changed", why.empty() ? "" : ". Reasons: ", why,
        sum.rejections.size() > 5 ? "; ..." : ""));
  }
  FT_RETURN_IF_ERROR(algo_->Update(updates, info, &state_));
  if (opts_.track_accepted)
    for (const ClientUpdate& u : updates) accepted_through_[u.id] = round + 1;
  state_.round = round + 1;
  if (state_.x.size() != dim)
    return absl::InternalError(absl::StrCat("round ", round, ": the algorithm changed the model from ",
                                            dim, " to ", state_.x.size(), " floats"));
  if (absl::Status s = CheckFinite(state_.x, "global model"); !s.ok())
    return absl::InternalError(absl::StrCat("round ", round, ": ", s.message(),
                                            " (diverged: lower local.lr or algorithm.server_lr)"));

  sum.received = static_cast<int64_t>(updates.size());
  sum.rejected = static_cast<int64_t>(info.rejected.size() + info.dropped.size());
  sum.train_loss = loss_weight > 0 ? loss_sum / loss_weight : std::nan("");
  cum_up_ += sum.bytes_up;
  cum_down_ += sum.bytes_down;
  sum.cum_bytes_up = cum_up_;
  sum.cum_bytes_down = cum_down_;

  // 4. Evaluate every E rounds and after the last.
  const bool last = static_cast<int64_t>(round) + 1 == opts_.rounds;
  if (evaluator_ && ((round + 1) % static_cast<uint64_t>(opts_.eval_every) == 0 || last)) {
    FT_ASSIGN_OR_RETURN(EvalMetrics e, evaluator_(state_.x));
    sum.test = e;
  }
  sum.wall_s = absl::ToDoubleSeconds(clock_->Now() - start_);

  if (sink_) {
    MetricsRow row;
    row.Set("round", static_cast<int64_t>(round))
        .Set("sampled", sum.sampled)
        .Set("received", sum.received)
        .Set("rejected", sum.rejected)
        .Set("refused", sum.refused)
        .Set("train_loss", sum.train_loss)
        .Set("test_loss", sum.test ? sum.test->loss : std::nan(""))
        .Set("test_accuracy", sum.test ? sum.test->accuracy : std::nan(""))
        .Set("bytes_up", static_cast<int64_t>(sum.bytes_up))
        .Set("bytes_down", static_cast<int64_t>(sum.bytes_down))
        .Set("cum_bytes_up", static_cast<int64_t>(sum.cum_bytes_up))
        .Set("cum_bytes_down", static_cast<int64_t>(sum.cum_bytes_down))
        .Set("lr", sum.lr)
        .Set("wall_s", sum.wall_s);
    FT_RETURN_IF_ERROR(sink_->Write(row));
  }
  return sum;
}

absl::StatusOr<CoordinatorSnapshot> Coordinator::Snapshot() const {
  FT_CHECK(initialised_);
  CoordinatorSnapshot snap;
  snap.state = state_;
  FT_RETURN_IF_ERROR(algo_->SaveExtraState(&snap.algorithm_extra));
  snap.accepted_through = accepted_through_;
  snap.cum_bytes_up = cum_up_;
  snap.cum_bytes_down = cum_down_;
  snap.wall_s = absl::ToDoubleSeconds(clock_->Now() - start_);
  return snap;
}

absl::Status Coordinator::Restore(CoordinatorSnapshot snap) {
  FT_CHECK(initialised_);
  if (snap.state.x.size() != state_.x.size())
    return absl::InvalidArgumentError(absl::StrCat("the checkpoint's model has ",
                                                   snap.state.x.size(), " floats; this run's has ",
                                                   state_.x.size()));
  for (const auto& [name, v] : state_.vectors) {
    auto it = snap.state.vectors.find(name);
    if (it == snap.state.vectors.end() || it->second.size() != v.size())
      return absl::InvalidArgumentError(absl::StrCat(
          "the checkpoint's server state vector '", name, "' is ",
          it == snap.state.vectors.end() ? "missing" : "of another size"));
  }
  for (const auto& [name, v] : snap.state.vectors)
    if (state_.vectors.count(name) == 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "the checkpoint has server state vector '", name, "' that this algorithm lacks"));
  if (static_cast<int64_t>(snap.state.round) > opts_.rounds)
    return absl::InvalidArgumentError(absl::StrCat("the checkpoint is after round ",
                                                   snap.state.round, " of a run of ",
                                                   opts_.rounds, " rounds"));
  for (const auto& [id, through] : snap.accepted_through)
    if (static_cast<int64_t>(id) >= opts_.num_clients || through > snap.state.round)
      return absl::InvalidArgumentError(absl::StrCat("the checkpoint's accepted_through of client ",
                                                     id, " is out of range"));
  FT_RETURN_IF_ERROR(algo_->LoadExtraState(snap.algorithm_extra));
  state_ = std::move(snap.state);
  accepted_through_ = std::move(snap.accepted_through);
  cum_up_ = snap.cum_bytes_up;
  cum_down_ = snap.cum_bytes_down;
  start_ = clock_->Now() - absl::Seconds(snap.wall_s);
  return absl::OkStatus();
}

absl::Status Coordinator::Run(const std::function<void(const RoundSummary&)>& on_round,
                              const std::function<absl::Status()>& after_round) {
  while (rounds_done() < opts_.rounds) {
    FT_ASSIGN_OR_RETURN(RoundSummary s, RunRound());
    if (on_round) on_round(s);
    if (after_round) FT_RETURN_IF_ERROR(after_round());
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
