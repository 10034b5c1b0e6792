#include "client/worker.h"

#include "absl/strings/str_cat.h"
#include "comm/payload_wire.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::StatusOr<v1::UpdateMsg> Worker::Handle(const v1::TaskMsg& task) {
  const ClientId id = task.client_id();
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("client ", id, ", round ", task.round(), ": ",
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

  ClientState state;
  if (absl::Status s = store_->Load(id, &state); !s.ok()) return fail(s);
  Payload up;
  LocalResult result;
  if (absl::Status s = algo_->LocalUpdate(down, ctx, &state, &up, &result); !s.ok())
    return fail(s);
  if (up.parts.size() != opts_.num_up_parts)
    return fail(absl::InternalError(absl::StrCat("algorithm produced ", up.parts.size(),
                                                 " up parts; expected ", opts_.num_up_parts)));

  v1::UpdateMsg msg;
  msg.set_round(task.round());
  msg.set_client_id(id);
  msg.set_num_samples(data->size());
  msg.set_local_steps(static_cast<uint64_t>(result.steps));
  msg.set_train_loss(result.train_loss);
  RngStream comp_rng = RngStream::For(task.seed(), task.round(), id, Purpose::kCompression);
  // update -> clip -> error feedback -> compressor -> codec; feedback state goes into `state`.
  Payload sent;  // the up payload as the server will decode it
  if (absl::Status s = uplink_->Encode(up, comp_rng, &state, msg.mutable_up(), &sent); !s.ok())
    return fail(s);
  // The algorithm's trackers advance by what the server receives (ClientAlgorithm::CommitSent).
  // Without feedback and with EF14 the server algorithm sees exactly the decoded message. With
  // a tracker feedback (EF21, EControl) it sees h + (|S|/N) c_i, which the client cannot know,
  // so the algorithm is given its own exact vectors: its state follows them as without
  // compression.
  const bool tracker = HasTracker(uplink_->options().feedback.method);
  if (absl::Status s = algo_->CommitSent(up, tracker ? up : sent, &state); !s.ok())
    return fail(s);
  // Commit the client's state only once the reply is complete: a failed task leaves the
  // stored state as it was.
  if (absl::Status s = store_->Save(id, std::move(state)); !s.ok()) return fail(s);
  return msg;
}

}  // namespace fedtrain
