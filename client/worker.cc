#include "client/worker.h"

#include "absl/strings/str_cat.h"
#include "compression/payload_codec.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

// Reserved key prefixes of a versioned state (WorkerOptions::versioned_state); algorithms
// never see them.
constexpr char kTagKey[] = "__ft.accepted_through";
constexpr char kPrevTagKey[] = "__ft.prev.accepted_through";
constexpr char kPrevPrefix[] = "__ft.prev.";

// Keys of the stale attack's history in a client's state (Worker::Attack); the algorithm never
// sees them.
constexpr char kAttackPrefix[] = "__ft.attack.";

bool Empty(const ClientState& s) { return s.vectors.empty() && s.wide.empty(); }

// Moves the attack's keys out of `state` into `history`.
void ExtractAttackKeys(ClientState* state, ClientState* history) {
  for (auto it = state->vectors.begin(); it != state->vectors.end();) {
    if (it->first.rfind(kAttackPrefix, 0) == 0) {
      history->vectors[it->first] = std::move(it->second);
      it = state->vectors.erase(it);
    } else {
      ++it;
    }
  }
}

std::string StaleKey(int64_t age, size_t part) {
  return absl::StrCat(kAttackPrefix, "stale.", age, ".", part);
}

// Splits a stored versioned state into its current and previous versions and their tags
// (-1: untagged).
void Split(ClientState stored, ClientState* cur, int64_t* cur_tag, ClientState* prev,
           int64_t* prev_tag) {
  *cur_tag = *prev_tag = -1;
  const std::string prefix = kPrevPrefix;
  for (auto& [k, v] : stored.wide) {
    if (k == kTagKey) {
      *cur_tag = static_cast<int64_t>(v.at(0));
    } else if (k == kPrevTagKey) {
      *prev_tag = static_cast<int64_t>(v.at(0));
    } else if (k.rfind(prefix, 0) == 0) {
      prev->wide[k.substr(prefix.size())] = std::move(v);
    } else {
      cur->wide[k] = std::move(v);
    }
  }
  for (auto& [k, v] : stored.vectors) {
    if (k.rfind(prefix, 0) == 0) {
      prev->vectors[k.substr(prefix.size())] = std::move(v);
    } else {
      cur->vectors[k] = std::move(v);
    }
  }
}

ClientState Join(ClientState cur, int64_t cur_tag, ClientState prev, int64_t prev_tag) {
  ClientState out = std::move(cur);
  out.wide[kTagKey] = {static_cast<double>(cur_tag)};
  out.wide[kPrevTagKey] = {static_cast<double>(prev_tag)};
  for (auto& [k, v] : prev.vectors) out.vectors[kPrevPrefix + k] = std::move(v);
  for (auto& [k, v] : prev.wide) out.wide[kPrevPrefix + k] = std::move(v);
  return out;
}

}  // namespace

absl::StatusOr<v1::UpdateMsg> Worker::Handle(const Task& task) {
  const ClientId id = task.client_id;
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("client ", id, ", round ", task.round() + 1, ": ",
                                               s.message()));
  };
  // The down payload is sent uncompressed (identity codec) in this build.
  IdentityCompressor down_codec;
  Payload down;
  if (absl::Status s = DecodePayload(task.down(), down_codec, task.down().parts_size(),
                                     trainer_->dim(), &down);
      !s.ok())
    return fail(s);
  if (down.parts.empty()) return fail(absl::InvalidArgumentError("task carries no model"));
  absl::StatusOr<DataView> data = data_(id);
  if (!data.ok()) return fail(data.status());

  LocalContext ctx;
  ctx.trainer = trainer_.get();
  ctx.data = *data;
  ctx.sgd = opts_.sgd;
  ctx.sgd.lr = task.lr();
  RngStream batch_rng = RngStream::For(task.seed(), task.round(), id, Purpose::kMinibatch);
  ctx.rng = &batch_rng;
  ctx.round = task.round();
  ctx.client = id;

  ClientState state, history;
  if (absl::Status s = store_->Load(id, &state); !s.ok()) return fail(s);
  // With versioned states: pick the version the server accepted (see WorkerOptions).
  const int64_t accepted = static_cast<int64_t>(task.accepted_through);
  ClientState start;  // the version this task starts from, kept as the previous one
  bool started_empty = true;
  if (opts_.versioned_state) {
    ClientState cur, prev;
    int64_t cur_tag, prev_tag;
    Split(std::move(state), &cur, &cur_tag, &prev, &prev_tag);
    state = ClientState();
    if (accepted == 0 || (cur_tag < 0 && Empty(cur))) {
      // Never accepted: the initial (empty) state. Untagged and empty: nothing stored.
    } else if (cur_tag == accepted) {
      state = std::move(cur);
    } else if (prev_tag == accepted) {
      state = std::move(prev);
    } else if (cur_tag < 0) {
      state = std::move(cur);  // written without versions: taken as it is
    } else {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "the stored state is from round ", cur_tag,
          prev_tag > 0 ? absl::StrCat(" (and round ", prev_tag, ")") : std::string(),
          " but the server accepted this client through round ", accepted,
          ": the worker's state folder does not match the server (restarted from an older "
          "checkpoint than every round since? resume with checkpoint.every 1)")));
    }
    start = state;
  }
  ExtractAttackKeys(&state, &history);
  started_empty = Empty(state);
  Payload up;
  LocalResult result;
  if (absl::Status s = algo_->LocalUpdate(down, ctx, &state, &up, &result); !s.ok())
    return fail(s);
  if (up.parts.size() != opts_.num_up_parts)
    return fail(absl::InternalError(absl::StrCat("algorithm produced ", up.parts.size(),
                                                 " up parts; expected ", opts_.num_up_parts)));
  // Read before Attack: recomputing other clients' updates may reuse the data's buffer.
  const uint64_t num_samples = data->size();
  if (opts_.attack.active() && opts_.attack.at == AttackAt::kWorker &&
      opts_.attack.clients.count(id))
    if (absl::Status s = Attack(task, down, ctx, &history, &up); !s.ok()) return fail(s);

  v1::UpdateMsg msg;
  msg.set_round(task.round());
  msg.set_client_id(id);
  msg.set_num_samples(num_samples);
  msg.set_local_steps(static_cast<uint64_t>(result.steps));
  msg.set_train_loss(result.train_loss);
  RngStream comp_rng = RngStream::For(task.seed(), task.round(), id, Purpose::kCompression);
  // update -> clip -> error feedback -> compressor -> codec; feedback state goes into `state`
  // (the working copy: saved below only when the whole task succeeded).
  if (opts_.commit_sent && uplink_->options().feedback.method != Feedback::kNone)
    return fail(absl::InternalError(
        "an algorithm that uses CommitSent runs without error feedback (refused at config load)"));
  Payload sent;  // the up payload as the server will decode it, for CommitSent only
  if (absl::Status s = uplink_->Encode(up, comp_rng, &state, msg.mutable_up(),
                                       opts_.commit_sent ? &sent : nullptr);
      !s.ok())
    return fail(s);
  // The algorithm's trackers advance by what the server receives (ClientAlgorithm::CommitSent):
  // without feedback, exactly the decoded message.
  if (opts_.commit_sent)
    if (absl::Status s = algo_->CommitSent(up, sent, &state); !s.ok()) return fail(s);
  // Commit the client's state only once the reply is complete: a failed task leaves the
  // stored state as it was.
  if (opts_.versioned_state) {
    if (started_empty && accepted > 0 && !Empty(state))
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "this worker holds no state for the client, but the server accepted its update of "
          "round ", accepted, ": the state was lost (run workers with --state-dir to keep "
          "client states across restarts)")));
  }
  for (auto& [k, v] : history.vectors) state.vectors[k] = std::move(v);
  if (opts_.versioned_state) {
    // Stateless algorithms keep storing nothing.
    if (!Empty(state) || !Empty(start))
      state = Join(std::move(state), static_cast<int64_t>(task.round()) + 1, std::move(start),
                   accepted);
  }
  if (absl::Status s = store_->Save(id, std::move(state)); !s.ok()) return fail(s);
  return msg;
}

absl::Status Worker::Recompute(const Task& task, const Payload& down, const LocalContext& ctx,
                               ClientId c, Payload* up) {
  absl::StatusOr<DataView> data = data_(c);
  if (!data.ok())
    return absl::Status(data.status().code(),
                        absl::StrCat("attack ", opts_.attack.name, " recomputes client ", c,
                                     "'s update: ", data.status().message()));
  LocalContext other = ctx;
  other.data = *data;
  other.client = c;
  RngStream rng = RngStream::For(task.seed(), task.round(), c, Purpose::kMinibatch);
  other.rng = &rng;
  ClientState state;
  LocalResult result;
  FT_RETURN_IF_ERROR(algo_->LocalUpdate(down, other, &state, up, &result));
  if (!Empty(state))
    return absl::FailedPreconditionError(absl::StrCat(
        "attack ", opts_.attack.name, " at the worker recomputes the round's other updates, but "
        "the algorithm's client half keeps a state (client ", c, ") the worker does not have; "
        "use attack.at \"server\" or attack.omniscient false"));
  return absl::OkStatus();
}

absl::Status Worker::Attack(const Task& task, const Payload& down, const LocalContext& ctx,
                            ClientState* history, Payload* up) {
  const AttackOptions& a = opts_.attack;
  const ClientId id = task.client_id;
  if (a.name == "stale") {
    // The update of stale_rounds participations ago (age stale_rounds - 1 in the history), or
    // the oldest kept while there are fewer; the first participation sends its own.
    int64_t kept = 0;
    while (kept < a.stale_rounds && history->vectors.count(StaleKey(kept, 0))) ++kept;
    Payload honest = *up;
    if (kept > 0)
      for (size_t part = 0; part < up->parts.size(); ++part) {
        auto it = history->vectors.find(StaleKey(kept - 1, part));
        if (it == history->vectors.end() || it->second.size() != up->parts[part].size())
          return absl::DataLossError(absl::StrCat("the stale attack's history of client ", id,
                                                  " lacks part ", part));
        up->parts[part] = it->second;
      }
    // Age every kept update by one; drop what falls beyond stale_rounds.
    for (int64_t age = std::min(kept, a.stale_rounds - 1); age > 0; --age)
      for (size_t part = 0; part < honest.parts.size(); ++part)
        history->vectors[StaleKey(age, part)] = history->vectors[StaleKey(age - 1, part)];
    for (size_t part = 0; part < honest.parts.size(); ++part)
      history->vectors[StaleKey(0, part)] = std::move(honest.parts[part]);
    return absl::OkStatus();
  }
  if (!IsVectorAttack(a.name)) return absl::OkStatus();  // data attacks acted on the data
  std::vector<ClientId> sampled;
  if (NeedsReference(a)) {
    if (!opts_.round_clients)
      return absl::InternalError("the worker does not know the round's clients");
    sampled = opts_.round_clients(task.round());
  }
  std::vector<ClientId> honest_ids, faulty_ids;
  for (ClientId c : sampled) (a.clients.count(c) ? faulty_ids : honest_ids).push_back(c);
  const std::vector<ClientId>& ref_ids =
      a.omniscient && !honest_ids.empty() ? honest_ids : faulty_ids;
  std::vector<Payload> others;  // the recomputed updates, in ref_ids order
  if (NeedsReference(a)) {
    others.reserve(ref_ids.size());
    for (ClientId c : ref_ids) {
      others.emplace_back();
      if (c != id) FT_RETURN_IF_ERROR(Recompute(task, down, ctx, c, &others.back()));
    }
  }
  FT_ASSIGN_OR_RETURN(const double z, RoundZ(a, static_cast<int64_t>(sampled.size()),
                                              static_cast<int64_t>(faulty_ids.size())));
  for (size_t part = 0; part < up->parts.size(); ++part) {
    std::vector<ConstVec> refs;
    for (size_t j = 0; j < others.size(); ++j)
      refs.push_back(ref_ids[j] == id ? ConstVec(up->parts[part]) : ConstVec(others[j].parts[part]));
    const ReferenceStats stats = ComputeReferenceStats(a, refs);
    std::vector<float> sent;
    FT_RETURN_IF_ERROR(AttackVector(a, task.round(), id, z, stats, up->parts[part], &sent));
    up->parts[part] = std::move(sent);
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
