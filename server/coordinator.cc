#include "server/coordinator.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "compression/payload_codec.h"
#include "core/rng.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

// How absl::Status::ToString() starts for a FailedPrecondition status.
constexpr char kFailedPreconditionPrefix[] = "FAILED_PRECONDITION: ";

}  // namespace

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

int64_t SampleSize(int64_t num_clients, int64_t clients_per_round, double over_selection) {
  if (over_selection <= 0) return clients_per_round;
  // ceil(cpr * over) in integers, with over taken to 6 decimals: in floating point
  // 100 * 1.1 is 110.00000000000001, whose ceiling would sample one client too many.
  const int64_t ppm = std::llround(over_selection * 1e6);
  const int64_t extra = (clients_per_round * ppm + 999999) / 1000000;
  return std::min<int64_t>(num_clients, clients_per_round + extra);
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
  if (opts_.privacy) sends_.assign(static_cast<size_t>(opts_.num_clients), 0);
  max_sends_ = 0;
  initialised_ = true;
  return absl::OkStatus();
}

// One accepted reply, kept until the round's Update (one record per client).
struct Coordinator::ClientRecord {
  uint64_t num_samples = 0;
  int64_t steps = 0;
  double train_loss = 0.0;
  Payload payload;          // decoded up payload
  std::vector<bool> dense;  // per part: a tracker's dense initialisation
};

// What one round works on, from the broadcast to the metrics row.
struct Coordinator::Round {
  uint64_t round = 0;
  size_t dim = 0;
  RoundSummary sum;
  RoundInfo info;  // info.sampled: the round's clients, sorted
  absl::flat_hash_set<ClientId> pending;   // asked, not answered yet
  std::map<ClientId, ClientRecord> accepted;  // ordered by client id: the reduction order
  size_t over_selected = 0;  // dropped because the round had its updates first
};

absl::StatusOr<RoundSummary> Coordinator::RunRound() {
  FT_CHECK(initialised_);
  Round r;
  r.round = state_.round;
  r.dim = state_.x.size();
  r.sum.round = r.round;
  r.sum.lr = opts_.lr * std::pow(opts_.lr_decay, static_cast<double>(r.round));
  r.info.round = r.round;
  r.info.num_clients = static_cast<uint64_t>(opts_.num_clients);
  r.info.lr = r.sum.lr;
  r.info.pool = pool_;
  FT_RETURN_IF_ERROR(Broadcast(&r));
  FT_RETURN_IF_ERROR(Collect(&r));
  FT_RETURN_IF_ERROR(CheckProgress(r));
  FT_RETURN_IF_ERROR(Aggregate(&r));
  FT_RETURN_IF_ERROR(Record(&r));
  return std::move(r.sum);
}

// 1. Select the round's clients and send each its task. The down payload is encoded once into
// a message shared read-only by every client's task.
int64_t Coordinator::ToSample() const {
  return SampleSize(opts_.num_clients, opts_.clients_per_round, opts_.over_selection);
}

uint32_t Coordinator::MaxSendsWith(const std::vector<ClientId>& sampled) const {
  uint32_t m = max_sends_;
  for (ClientId id : sampled) m = std::max(m, sends_[id] + 1);
  return m;
}

void Coordinator::CountSends(const std::vector<ClientId>& sampled) {
  for (ClientId id : sampled) max_sends_ = std::max(max_sends_, ++sends_[id]);
}

std::optional<DpGuarantee> Coordinator::privacy_spent() const {
  if (!opts_.privacy) return std::nullopt;
  return opts_.privacy->After(state_.round, max_sends_);
}

absl::Status Coordinator::Broadcast(Round* r) {
  r->info.sampled = SampleClients(opts_.sampling_seed, r->round, opts_.num_clients, ToSample());
  if (opts_.privacy) CountSends(r->info.sampled);
  r->sum.sampled = static_cast<int64_t>(r->info.sampled.size());
  Payload down;
  FT_RETURN_IF_ERROR(algo_->DownPayload(state_, &down));
  auto common = std::make_shared<v1::TaskMsg>();
  common->set_round(r->round);
  common->set_lr(r->sum.lr);
  common->set_seed(opts_.seed);
  {
    IdentityCompressor down_codec;  // downlink is uncompressed in this build
    RngStream unused = RngStream::For(opts_.seed, r->round, 0, Purpose::kCompression);
    FT_RETURN_IF_ERROR(EncodePayload(down, down_codec, unused, common->mutable_down()));
  }
  // Each client's task is the common message plus two fields (client_id, accepted_through):
  // its size is the common size plus theirs.
  const std::shared_ptr<const v1::TaskMsg> shared = std::move(common);
  for (ClientId id : r->info.sampled) {
    Task t;
    t.common = shared;
    t.client_id = id;
    if (opts_.track_accepted) {
      auto it = accepted_through_.find(id);
      t.accepted_through = it == accepted_through_.end() ? 0 : it->second;
    }
    r->sum.bytes_down += t.ByteSize();
    if (absl::Status s = transport_->SendTask(std::move(t)); !s.ok()) {
      r->info.dropped.push_back(id);
      r->sum.rejections.push_back(
          absl::StrCat("client ", id, ": task not delivered: ", s.ToString()));
      continue;
    }
    r->pending.insert(id);
  }
  return absl::OkStatus();
}

// 2. Receive replies until every pending client replied, the round has enough of them
// (over-selection) or the deadline passed.
absl::Status Coordinator::Collect(Round* r) {
  // The round closes early once this many updates were accepted (over-selection only).
  const size_t enough = static_cast<size_t>(opts_.clients_per_round);
  const absl::Time deadline = clock_->Now() + opts_.round_timeout;
  while (!r->pending.empty() && r->accepted.size() < enough) {
    absl::StatusOr<ReceivedUpdate> got = transport_->ReceiveUpdate(deadline);
    if (!got.ok()) {
      if (got.status().code() != absl::StatusCode::kDeadlineExceeded) return got.status();
      for (ClientId id : r->pending) {
        r->info.dropped.push_back(id);
        r->sum.rejections.push_back(
            absl::StrCat("client ", id, ": no reply by the round deadline"));
      }
      break;
    }
    r->sum.bytes_up += SerializedSize(*got);
    const v1::UpdateMsg& m = got->msg;
    const ClientId id = m.client_id();
    if (m.round() != r->round) {
      r->sum.rejections.push_back(absl::StrCat("client ", id, ": update for round ", m.round() + 1,
                                               ", current round is ", r->round + 1));
      continue;  // a stale reply: the client may still answer this round
    }
    if (!r->pending.contains(id)) {
      r->sum.rejections.push_back(
          absl::StrCat("client ", id, ": was not asked this round or already replied"));
      continue;
    }
    r->pending.erase(id);
    // A worker that cannot train a client for a reason that will not go away (its state was
    // lost, or its state folder belongs to another run: FailedPrecondition, client/worker.cc)
    // would fail that client every round while the run silently went on without it.
    // comm/transport.h ReplyOrError carries the worker's status as Status::ToString().
    if (absl::StartsWith(m.error(), kFailedPreconditionPrefix))
      return absl::FailedPreconditionError(absl::StrCat(
          "round ", r->round + 1, ": the worker of client ", id, " cannot train it: ",
          m.error().substr(sizeof(kFailedPreconditionPrefix) - 1)));
    absl::StatusOr<ClientRecord> rec = Accept(*got, r->dim);
    if (!rec.ok()) {
      r->info.rejected.push_back(id);
      r->sum.rejections.push_back(absl::StrCat("client ", id, ": ", rec.status().message()));
      continue;
    }
    r->accepted.emplace(id, *std::move(rec));
  }
  if (!r->pending.empty() && r->accepted.size() >= enough) {
    r->over_selected = r->pending.size();
    for (ClientId id : r->pending) {
      r->info.dropped.push_back(id);
      r->sum.rejections.push_back(absl::StrCat("client ", id, ": over-selected, the round closed "
                                               "with its ", enough, " updates first"));
    }
  }
  for (std::string& why : transport_->TakeRefused()) {
    ++r->sum.refused;
    r->sum.rejections.push_back(absl::StrCat("transport refused a message: ", why));
  }
  std::sort(r->info.dropped.begin(), r->info.dropped.end());
  std::sort(r->info.rejected.begin(), r->info.rejected.end());
  return absl::OkStatus();
}

// 3. Validate and decode one reply of this round from a client that was asked: the reason
// for a rejection is the error's message.
absl::StatusOr<Coordinator::ClientRecord> Coordinator::Accept(const ReceivedUpdate& got,
                                                              size_t dim) const {
  const v1::UpdateMsg& m = got.msg;
  if (!m.error().empty()) return absl::AbortedError(absl::StrCat("worker failed: ", m.error()));
  if (m.num_samples() == 0) return absl::InvalidArgumentError("reported 0 training samples");
  if (!std::isfinite(m.train_loss()))
    return absl::InvalidArgumentError("reported a non-finite training loss");
  ClientRecord rec;
  rec.num_samples = m.num_samples();
  rec.steps = static_cast<int64_t>(m.local_steps());
  rec.train_loss = m.train_loss();
  FT_RETURN_IF_ERROR(uplink_->Decode(m.up(), got.part_data, algo_->num_up_parts(), dim,
                                     &rec.payload, &rec.dense));
  FT_RETURN_IF_ERROR(algo_->CheckUpdate(View(m.client_id(), rec)));
  if (opts_.central_noise_sigma > 0) {
    RngStream noise = RngStream::For(opts_.seed, state_.round, m.client_id(), Purpose::kPrivacy);
    for (std::vector<float>& part : rec.payload.parts)
      for (float& v : part)
        v = static_cast<float>(static_cast<double>(v) + opts_.central_noise_sigma * noise.Normal());
  }
  // Last, so that a malformed update is refused for what is wrong with it.
  if (opts_.client_samples) {
    const uint64_t want = opts_.client_samples(m.client_id());
    if (m.num_samples() != want)
      return absl::InvalidArgumentError(absl::StrCat("reported ", m.num_samples(),
                                                     " training samples; the client holds ",
                                                     want));
  }
  return rec;
}

ClientUpdate Coordinator::View(ClientId id, const ClientRecord& rec) {
  ClientUpdate u;
  u.id = id;
  u.num_samples = rec.num_samples;
  u.steps = rec.steps;
  for (const std::vector<float>& part : rec.payload.parts) u.parts.push_back(part);
  u.dense = rec.dense;
  return u;
}

// 3b. A run whose replies are all rejected round after round (non-finite updates from a
// diverging learning rate, say) cannot learn: fail it after opts_.max_rejected_rounds such
// rounds instead of running on at chance accuracy. Rounds in which nothing arrived (workers
// gone) are min_updates' business and neither count nor reset the streak.
absl::Status Coordinator::CheckProgress(const Round& r) {
  if (!r.accepted.empty()) {
    rejected_streak_ = 0;
    return absl::OkStatus();
  }
  if (r.info.rejected.empty()) return absl::OkStatus();
  if (rejected_streak_++ == 0) rejected_streak_first_ = r.round;
  if (opts_.max_rejected_rounds <= 0 || rejected_streak_ < opts_.max_rejected_rounds)
    return absl::OkStatus();
  std::string why;
  for (size_t i = 0; i < r.sum.rejections.size() && i < 3; ++i)
    absl::StrAppend(&why, i ? "; " : "", r.sum.rejections[i]);
  return absl::FailedPreconditionError(absl::StrCat(
      "rounds ", rejected_streak_first_ + 1, " to ", r.round + 1, " accepted no update: every reply "
      "was rejected in ", rejected_streak_, " of them (federation.max_rejected_rounds = ",
      opts_.max_rejected_rounds, "; 0 turns this off). Last reasons: ", why,
      r.sum.rejections.size() > 3 ? "; ..." : ""));
}

// 4. Hand the accepted updates to the server half in client-id order (the loss too, so the
// metrics are reproducible bit for bit), then check what it made of the model.
absl::Status Coordinator::Aggregate(Round* r) {
  std::vector<ClientUpdate> updates;
  updates.reserve(r->accepted.size());
  double loss_sum = 0.0, loss_weight = 0.0;
  for (const auto& [id, rec] : r->accepted) {
    loss_sum += rec.train_loss * static_cast<double>(rec.num_samples);
    loss_weight += static_cast<double>(rec.num_samples);
    updates.push_back(View(id, rec));
  }
  RoundSummary& sum = r->sum;
  sum.missing = static_cast<int64_t>(r->info.sampled.size() - r->over_selected - updates.size());
  if (opts_.require_all && sum.missing > 0) {
    std::string why;
    for (size_t i = 0; i < sum.rejections.size() && i < 5; ++i)
      absl::StrAppend(&why, i ? "; " : "", sum.rejections[i]);
    return absl::UnavailableError(absl::StrCat(
        "round ", r->round + 1, " closed without ", sum.missing, " of its ", r->info.sampled.size(),
        " sampled clients' updates and federation.require_all is set; the model was not "
        "changed", why.empty() ? "" : ". Reasons: ", why, sum.rejections.size() > 5 ? "; ..." : ""));
  }
  if (static_cast<int64_t>(updates.size()) < opts_.min_updates) {
    std::string why;
    for (size_t i = 0; i < sum.rejections.size() && i < 5; ++i)
      absl::StrAppend(&why, i ? "; " : "", sum.rejections[i]);
    return absl::UnavailableError(absl::StrCat(
        "round ", r->round + 1, " closed with ", updates.size(), " accepted updates of ",
        r->info.sampled.size(), " sampled clients, below federation.min_updates (", opts_.min_updates,
        "); the model was not changed", why.empty() ? "" : ". Reasons: ", why,
        sum.rejections.size() > 5 ? "; ..." : ""));
  }
  std::vector<std::vector<float>> attack_storage;  // the attacked vectors, alive until Update
  FT_ASSIGN_OR_RETURN(sum.attacked, ApplyAttack(opts_.attack, r->round, &updates, &attack_storage));
  if (opts_.attack.active() && opts_.attack.at == AttackAt::kWorker)
    for (const ClientUpdate& u : updates) sum.attacked += opts_.attack.clients.count(u.id);
  r->info.diagnostics = &sum.reducer;
  FT_RETURN_IF_ERROR(algo_->Update(updates, r->info, &state_));
  if (opts_.track_accepted)
    for (const ClientUpdate& u : updates) accepted_through_[u.id] = r->round + 1;
  state_.round = r->round + 1;
  if (state_.x.size() != r->dim)
    return absl::InternalError(absl::StrCat("round ", r->round + 1,
                                            ": the algorithm changed the model from ", r->dim,
                                            " to ", state_.x.size(), " floats"));
  if (absl::Status s = CheckFinite(state_.x, "global model"); !s.ok())
    return absl::InternalError(absl::StrCat("round ", r->round + 1, ": ", s.message(),
                                            " (diverged: lower local.lr or algorithm.server_lr)"));
  sum.received = static_cast<int64_t>(updates.size());
  sum.rejected = static_cast<int64_t>(r->info.rejected.size() + r->info.dropped.size());
  sum.train_loss = loss_weight > 0 ? loss_sum / loss_weight : std::nan("");
  return absl::OkStatus();
}

// 5. Traffic totals, evaluation every E rounds and after the last, the metrics row.
absl::Status Coordinator::Record(Round* r) {
  RoundSummary& sum = r->sum;
  cum_up_ += sum.bytes_up;
  cum_down_ += sum.bytes_down;
  sum.cum_bytes_up = cum_up_;
  sum.cum_bytes_down = cum_down_;
  const bool last = static_cast<int64_t>(r->round) + 1 == opts_.rounds;
  if (evaluator_ && ((r->round + 1) % static_cast<uint64_t>(opts_.eval_every) == 0 || last)) {
    FT_ASSIGN_OR_RETURN(EvalMetrics e, evaluator_(state_.x));
    sum.test = e;
  }
  sum.wall_s = absl::ToDoubleSeconds(clock_->Now() - start_);
  if (opts_.privacy) {
    sum.privacy = opts_.privacy->After(r->round + 1, max_sends_);
    sum.privacy_guarantee = GuaranteeName(opts_.privacy->options().guarantee);
  }
  if (!sink_) return absl::OkStatus();
  MetricsRow row;
  row.Set("round", static_cast<int64_t>(r->round) + 1)  // 1-based, as everywhere users see it
      .Set("sampled", sum.sampled)
      .Set("received", sum.received)
      .Set("rejected", sum.rejected)
      .Set("refused", sum.refused)
      .Set("missing", sum.missing)
      .Set("train_loss", sum.train_loss)
      .Set("test_loss", sum.test ? sum.test->loss : std::nan(""))
      .Set("test_accuracy", sum.test ? sum.test->accuracy : std::nan(""))
      .Set("bytes_up", static_cast<int64_t>(sum.bytes_up))
      .Set("bytes_down", static_cast<int64_t>(sum.bytes_down))
      .Set("cum_bytes_up", static_cast<int64_t>(sum.cum_bytes_up))
      .Set("cum_bytes_down", static_cast<int64_t>(sum.cum_bytes_down))
      .Set("lr", sum.lr)
      .Set("wall_s", sum.wall_s);
  if (opts_.reducer_diagnostics)
    row.Set("reducer_discarded", sum.reducer.discarded).Set("reducer_diag", sum.reducer.detail);
  if (opts_.attack.active()) row.Set("attacked", sum.attacked);
  if (sum.privacy)
    row.Set("epsilon", sum.privacy->epsilon)
        .Set("delta", sum.privacy->delta)
        .Set("privacy_guarantee", sum.privacy_guarantee);
  return sink_->Write(row);
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
    if (state_.vectors.count(name) == 0 && !absl::StartsWith(name, kReducerStatePrefix))
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
  if (opts_.privacy) {  // sampling is a function of (seed, round): replay who sent so far
    sends_.assign(static_cast<size_t>(opts_.num_clients), 0);
    max_sends_ = 0;
    for (uint64_t r = 0; r < state_.round; ++r)
      CountSends(SampleClients(opts_.sampling_seed, r, opts_.num_clients, ToSample()));
  }
  return absl::OkStatus();
}

absl::Status Coordinator::Run(const std::function<void(const RoundSummary&)>& on_round,
                              const std::function<absl::Status()>& after_round) {
  while (rounds_done() < opts_.rounds) {
    if (opts_.privacy && opts_.privacy_budget > 0) {
      const uint64_t next = state_.round;
      const DpGuarantee after = opts_.privacy->After(
          next + 1, MaxSendsWith(SampleClients(opts_.sampling_seed, next, opts_.num_clients,
                                               ToSample())));
      if (after.epsilon > opts_.privacy_budget) {
        stop_reason_ = absl::StrCat("privacy budget: round ", next, " would take epsilon to ",
                                    after.epsilon, " > privacy.budget_epsilon = ",
                                    opts_.privacy_budget, " (delta = ", after.delta, ", ",
                                    GuaranteeName(opts_.privacy->options().guarantee), ")");
        break;
      }
    }
    FT_ASSIGN_OR_RETURN(RoundSummary s, RunRound());
    if (on_round) on_round(s);
    if (after_round) FT_RETURN_IF_ERROR(after_round());
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
