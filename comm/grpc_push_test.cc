// The server's Push decoder (comm/grpc_push_reader.cc reads UpdateChunk messages as raw bytes and
// decodes them itself, leaving tensors' bytes in gRPC's receive buffers) against hostile byte
// streams, in process over loopback: every truncation and single-bit flip of a valid chunk
// stream, random bytes, fields out of place.
// Nothing crashes (this runs under ASan/UBSan too), nothing malformed is delivered, each
// refusal is recorded with a reason, and a valid push still goes through afterwards.
#include <malloc.h>

#include <cstdint>
#include <memory>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "comm/grpc_client.h"
#include "comm/grpc_server.h"
#include "core/rng.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace fedtrain {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "tok";

void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// UpdateChunk bytes: the header field (when `total` > 0), part_bytes (when any), then data.
std::string Chunk(uint64_t total, const std::string& data,
                  const std::vector<uint64_t>& part_bytes = {}) {
  std::string c;
  if (total != 0) {
    c.push_back(0x18);
    Varint(total, &c);
  }
  if (!part_bytes.empty()) {
    std::string packed;
    for (uint64_t n : part_bytes) Varint(n, &packed);
    c.push_back(0x2A);
    Varint(packed.size(), &c);
    c += packed;
  }
  c.push_back(0x22);
  Varint(data.size(), &c);
  c += data;
  return c;
}

// Run twice: with the server's defaults (the small tensors here are copied out of gRPC's
// buffers, the large ones referenced there), and with every piece of every tensor referenced.
class PushDecoderTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    GrpcServerOptions so;
    so.token = kToken;
    so.expected_workers = 1;
    so.max_update_bytes = 1 << 20;
    if (GetParam()) so.min_referenced_piece = 1;
    absl::StatusOr<std::unique_ptr<GrpcServerTransport>> s = GrpcServerTransport::Start(so);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(s).value();
    GrpcWorkerOptions wo;
    wo.server = server_->address();
    wo.token = kToken;
    absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> c =
        GrpcWorkerClient::Join(wo, absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(c).value();
    ASSERT_TRUE(server_->WaitForWorkers(absl::Now() + absl::Seconds(10)).ok());
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    valid_.set_round(3);
    valid_.set_client_id(0);
    valid_.set_num_samples(5);
    v1::Tensor* t = valid_.mutable_up()->add_parts();
    t->set_codec("identity/1");
    t->set_dim(64);
    t->set_data(std::string(256, '\x01'));
    valid_bytes_ = valid_.SerializeAsString();
    v1::UpdateMsg envelope = valid_;
    envelope.mutable_up()->mutable_parts(0)->clear_data();
    envelope_bytes_ = envelope.SerializeAsString();
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Shutdown(absl::Now() + absl::Seconds(1));
  }

  // Which credentials a push carries.
  enum class As { kSelf, kNoSession, kWrongSecret, kOtherWorker };
  // Sends `messages` (each one raw UpdateChunk) on one Push call; the call's status.
  grpc::Status Send(const std::vector<std::string>& messages, As as = As::kSelf) {
    grpc::ClientContext ctx;
    const std::string secret = absl::BytesToHexString(client_->joined().session());
    const uint64_t id = client_->joined().worker_id();
    switch (as) {
      case As::kSelf:
        client_->AddSession(&ctx);
        break;
      case As::kNoSession:
        break;
      case As::kWrongSecret:
        ctx.AddMetadata(kSessionMetadataKey,
                        absl::StrCat(id, ".", std::string(secret.size(), 'a')));
        break;
      case As::kOtherWorker:
        ctx.AddMetadata(kSessionMetadataKey, absl::StrCat(id + 7, ".", secret));
        break;
    }
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    size_t i = 0;
    return PushRawChunks(channel_, &ctx, [&](grpc::ByteBuffer* chunk) {
      if (i == messages.size()) return false;
      grpc::Slice s(messages[i++]);
      *chunk = grpc::ByteBuffer(&s, 1);
      return true;
    });
  }
  // The valid update as a stream of two chunks.
  std::vector<std::string> ValidStream() const {
    const size_t half = valid_bytes_.size() / 2;
    return {Chunk(valid_bytes_.size(), valid_bytes_.substr(0, half)),
            Chunk(0, valid_bytes_.substr(half))};
  }
  // The same update as the worker sends it: the envelope, then the tensor's 256 bytes, in
  // three chunks (the second one spans the end of the envelope and the start of the tensor).
  std::vector<std::string> BulkStream() const {
    const std::string all = envelope_bytes_ + valid_.up().parts(0).data();
    const size_t a = envelope_bytes_.size() / 2, b = envelope_bytes_.size() + 100;
    return {Chunk(all.size(), all.substr(0, a), {256}),
            Chunk(0, all.substr(a, b - a)), Chunk(0, all.substr(b))};
  }
  // The next update the server delivers, as one message.
  absl::StatusOr<v1::UpdateMsg> Receive() {
    absl::StatusOr<ReceivedUpdate> got = server_->ReceiveUpdate(absl::Now() + absl::Seconds(5));
    if (!got.ok()) return got.status();
    return Assemble(*std::move(got));
  }
  // Takes what the server delivered; true when nothing was.
  bool NothingDelivered() {
    return !server_->ReceiveUpdate(absl::Now() + absl::Milliseconds(1)).ok();
  }

  std::unique_ptr<GrpcServerTransport> server_;
  std::unique_ptr<GrpcWorkerClient> client_;
  std::shared_ptr<grpc::Channel> channel_;
  v1::UpdateMsg valid_;
  std::string valid_bytes_;
  std::string envelope_bytes_;  // valid_ without its tensor's bytes
};

TEST_P(PushDecoderTest, ValidStreamIsDeliveredIntact) {
  ASSERT_TRUE(Send(ValidStream()).ok());
  absl::StatusOr<v1::UpdateMsg> got = Receive();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), valid_bytes_);
  EXPECT_TRUE(server_->TakeRefused().empty());
}

TEST_P(PushDecoderTest, BulkStreamIsDeliveredIntact) {
  ASSERT_TRUE(Send(BulkStream()).ok());
  absl::StatusOr<v1::UpdateMsg> got = Receive();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), valid_bytes_);
  EXPECT_TRUE(server_->TakeRefused().empty());
}

TEST_P(PushDecoderTest, EveryTruncationIsRefused) {
  for (const std::vector<std::string>& stream : {ValidStream(), BulkStream()}) {
    for (size_t m = 0; m < stream.size(); ++m) {
      for (size_t cut = 0; cut < stream[m].size(); ++cut) {
        std::vector<std::string> s(stream.begin(), stream.begin() + static_cast<long>(m));
        s.push_back(stream[m].substr(0, cut));
        EXPECT_FALSE(Send(s).ok()) << stream.size() << "-chunk stream, message " << m
                                   << " cut at " << cut;
      }
    }
    EXPECT_FALSE(Send({stream[0]}).ok());  // the later chunks never came
  }
  EXPECT_TRUE(NothingDelivered());
  std::vector<std::string> why = server_->TakeRefused();
  EXPECT_FALSE(why.empty());
  ASSERT_TRUE(Send(ValidStream()).ok());  // the server still works
  EXPECT_TRUE(server_->ReceiveUpdate(absl::Now() + absl::Seconds(5)).ok());
}

TEST_P(PushDecoderTest, BitFlipsNeverBreakTheDecoder) {
  for (const std::vector<std::string>& stream : {ValidStream(), BulkStream()}) {
    for (size_t byte = 0; byte < 32 && byte < stream[0].size(); ++byte) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<std::string> s = stream;
        s[0][byte] = static_cast<char>(s[0][byte] ^ (1 << bit));
        // May or may not be refused: a flip inside the data, or one that makes the header
        // announce a shorter update that still parses, leaves a well-formed message; what
        // matters is that the decoder never reads out of bounds (ASan) and stays usable.
        (void)Send(s);
      }
    }
  }
  while (server_->ReceiveUpdate(absl::Now()).ok()) {
  }
  ASSERT_TRUE(Send(ValidStream()).ok());
  absl::StatusOr<v1::UpdateMsg> got = Receive();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), valid_bytes_);
  (void)server_->TakeRefused();
}

TEST_P(PushDecoderTest, HostileMessagesAreRefusedWithReasons) {
  // Without valid credentials: refused before a byte is read, counted apart from the
  // round's refusals.
  const uint64_t security_before = server_->security_refusals();
  for (As as : {As::kNoSession, As::kWrongSecret, As::kOtherWorker})
    EXPECT_EQ(Send({Chunk(4, "abcd")}, as).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(server_->security_refusals(), security_before + 3);
  EXPECT_TRUE(server_->TakeRefused().empty());
  EXPECT_EQ(Send({Chunk(0, "abcd")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // data before any header
  EXPECT_EQ(Send({Chunk((1 << 20) + 1, "a")}).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Send({Chunk(2, "abcd")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // more data than announced
  EXPECT_EQ(Send({std::string("\x32\x01\x00", 3)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // an unknown field
  EXPECT_EQ(Send({Chunk(4, "abcd")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // complete, but no UpdateMsg
  EXPECT_EQ(Send({Chunk(0, "")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // announces nothing
  // The tensors outside the envelope: sizes that leave no envelope, a count that disagrees
  // with the envelope's, bytes both inline and after, part_bytes after the data began, and
  // a packed field cut short.
  const std::string all = envelope_bytes_ + valid_.up().parts(0).data();
  EXPECT_EQ(Send({Chunk(all.size(), all, {all.size()})}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Send({Chunk(all.size(), all, {200, 56})}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  const std::string inline_too = valid_bytes_ + valid_.up().parts(0).data();
  EXPECT_EQ(Send({Chunk(inline_too.size(), inline_too, {256})}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Send({Chunk(all.size(), all.substr(0, 10), {256}),
                  Chunk(0, all.substr(10), {256})})
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Send({std::string("\x2a\x05\x80\x02", 4)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  RngStream rng = RngStream::For(1, 0, 0, Purpose::kTest);
  for (int i = 0; i < 200; ++i) {
    std::string junk(1 + rng.UniformInt(64), '\0');
    for (char& c : junk) c = static_cast<char>(rng.UniformInt(256));
    EXPECT_FALSE(Send({junk}).ok()) << "random message " << i;
  }
  EXPECT_TRUE(NothingDelivered());
  const std::vector<std::string> why = server_->TakeRefused();
  ASSERT_GE(why.size(), 10u);
  std::string reasons;
  for (const std::string& w : why) reasons += w + "\n";
  for (const char* reason : {"no header", "exceeds the limit",
                             "exceed the announced", "malformed update chunk",
                             "does not parse", "leave no room", "1 tensors but its chunks carry 2",
                             "both in the envelope", "malformed update chunk: part_bytes"})
    EXPECT_THAT(reasons, HasSubstr(reason));
}

// GrpcWorkerClient::Push sends every field of an update, tensors outside the envelope, and
// the server puts it back together exactly.
TEST_P(PushDecoderTest, WorkerPushRoundTripsEveryField) {
  v1::UpdateMsg m;
  m.set_round(9);
  m.set_client_id(0);
  m.set_num_samples(17);
  m.set_local_steps(4);
  m.set_train_loss(0.25);
  m.set_error("");
  (*m.mutable_up()->mutable_scalars())["norm"] = 1.5;
  (*m.mutable_up()->mutable_scalars())["loss"] = -2.0;
  RngStream rng = RngStream::For(2, 0, 0, Purpose::kTest);
  for (size_t bytes : {size_t{3} << 20, size_t{0}, size_t{5}, kGrpcChunkBytes}) {
    v1::Tensor* t = m.mutable_up()->add_parts();
    t->set_codec(bytes == 0 ? "" : "identity/1");
    t->set_dim(bytes / 4);
    std::string data(bytes, '\0');
    for (char& c : data) c = static_cast<char>(rng.UniformInt(256));
    t->set_data(std::move(data));
  }
  server_->SetMaxUpdateBytes(8 << 20);  // the fixture's 1 MiB is too small for this update
  const absl::Status pushed = client_->Push(m);
  ASSERT_TRUE(pushed.ok()) << pushed;
  absl::StatusOr<ReceivedUpdate> raw = server_->ReceiveUpdate(absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(raw.ok()) << raw.status();
  // The tensors' bytes arrive outside the message, as many as it has parts.
  ASSERT_EQ(raw->part_data.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(raw->msg.up().parts(static_cast<int>(i)).data().empty());
    EXPECT_EQ(raw->part_data[i], m.up().parts(static_cast<int>(i)).data()) << "tensor " << i;
  }
  EXPECT_EQ(SerializedSize(*raw), m.ByteSizeLong());
  absl::StatusOr<v1::UpdateMsg> got = Assemble(*std::move(raw));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, m));
  // An update with no tensors (a failed task) travels as one envelope.
  v1::UpdateMsg failed;
  failed.set_round(9);
  failed.set_error("out of memory");
  ASSERT_TRUE(client_->Push(failed).ok());
  got = Receive();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*got, failed));
  EXPECT_TRUE(server_->TakeRefused().empty());
}

// The tensors' bytes stay in gRPC's receive buffers only while the update is held: once it
// is dropped, the next pushes reuse that memory. (A reference leaked per piece kept every
// push's buffers alive: ~4 MiB more heap per 4 MiB push.)
TEST_P(PushDecoderTest, DroppedUpdatesGiveTheirBuffersBack) {
  v1::UpdateMsg m;
  m.set_round(1);
  m.set_num_samples(1);
  v1::Tensor* t = m.mutable_up()->add_parts();
  t->set_codec("identity/1");
  t->set_dim(1 << 20);
  t->set_data(std::string(4 << 20, '\x07'));
  server_->SetMaxUpdateBytes(8 << 20);
  auto push_and_drop = [&] {
    ASSERT_TRUE(client_->Push(m).ok());
    absl::StatusOr<ReceivedUpdate> got = server_->ReceiveUpdate(absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->part_data.size(), 1u);
    EXPECT_EQ(got->part_data[0].size(), size_t{4} << 20);
  };
  for (int i = 0; i < 3; ++i) push_and_drop();  // gRPC's buffers and pools warm up
  const size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 20; ++i) push_and_drop();
  const size_t after = mallinfo2().uordblks;
  // 20 pushes of 4 MiB that each kept their buffers would add 80 MiB; 16 MiB leaves room for
  // gRPC's own pools and the allocator. (Under ASan mallinfo2 may report 0: nothing to see.)
  EXPECT_LT(after, before + (size_t{16} << 20)) << "heap in use grew from " << before << " to "
                                                << after << " bytes";
}

INSTANTIATE_TEST_SUITE_P(SmallPiecesCopied, PushDecoderTest, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(EveryPieceReferenced, PushDecoderTest, ::testing::Values(true));

// A worker that joined but opened its task stream only after three heartbeat intervals of
// silence (a slow start under load: round 0 of 100 worker processes on 2 cores) still gets
// the tasks sent meanwhile, when it does.
TEST(TaskDeliveryTest, ASlowStartingWorkerGetsItsQueuedTask) {
  GrpcServerOptions so;
  so.token = kToken;
  so.expected_workers = 1;
  so.heartbeat_interval = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<GrpcServerTransport>> server = GrpcServerTransport::Start(so);
  ASSERT_TRUE(server.ok()) << server.status();
  GrpcWorkerOptions wo;
  wo.server = (*server)->address();
  wo.token = kToken;
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> client =
      GrpcWorkerClient::Join(wo, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*server)->WaitForWorkers(absl::Now() + absl::Seconds(10)).ok());
  absl::SleepFor(absl::Milliseconds(50));  // > 3 heartbeat intervals without a heartbeat
  v1::TaskMsg task;
  task.set_round(0);
  task.set_client_id(0);
  task.set_lr(0.5);
  const absl::Status sent = (*server)->SendTask(Task::From(task));
  ASSERT_TRUE(sent.ok()) << sent;
  (*server)->FinishRun(absl::Now());  // the session ends after the queued task
  std::vector<v1::TaskMsg> got;
  const absl::Status received =
      (*client)->ReceiveTasks([&](v1::TaskMsg t) { got.push_back(std::move(t)); });
  EXPECT_TRUE(received.ok()) << received;
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].lr(), 0.5);
  client->reset();
  (*server)->Shutdown(absl::Now() + absl::Seconds(1));
}

// Back-pressure: a push that would take the pushes in progress past the receive budget waits,
// unread, until another finishes; then it goes on and both arrive whole.
TEST(ReceiveBudgetTest, APushBeyondTheBudgetWaitsForRoom) {
  GrpcServerOptions so;
  so.token = kToken;
  so.expected_workers = 1;
  so.max_update_bytes = 600 << 10;
  so.receive_budget_bytes = 800 << 10;  // room for one 500 KB push, not two
  absl::StatusOr<std::unique_ptr<GrpcServerTransport>> server = GrpcServerTransport::Start(so);
  ASSERT_TRUE(server.ok()) << server.status();
  GrpcWorkerOptions wo;
  wo.server = (*server)->address();
  wo.token = kToken;
  absl::StatusOr<std::unique_ptr<GrpcWorkerClient>> client =
      GrpcWorkerClient::Join(wo, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*server)->WaitForWorkers(absl::Now() + absl::Seconds(10)).ok());
  // Two updates of client 0 with 500 KiB tensors, each sent as a stream of raw chunks whose
  // first chunk carries half of it; the first stream then waits for `go_on`.
  auto update = [](uint64_t round) {
    v1::UpdateMsg m;
    m.set_round(round);
    m.set_client_id(0);
    m.set_num_samples(1);
    v1::Tensor* t = m.mutable_up()->add_parts();
    t->set_codec("identity/1");
    t->set_dim(128000);
    t->set_data(std::string(512000, static_cast<char>('a' + round)));
    return m.SerializeAsString();
  };
  absl::Notification go_on;
  auto push = [&](const std::string& bytes, bool wait) {
    grpc::ClientContext ctx;
    (*client)->AddSession(&ctx);
    const auto ch = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
    const size_t half = bytes.size() / 2;
    int sent = 0;
    return PushRawChunks(ch, &ctx, [&](grpc::ByteBuffer* chunk) {
      if (sent == 2) return false;
      if (sent == 1 && wait) go_on.WaitForNotification();
      grpc::Slice sl(sent == 0 ? Chunk(bytes.size(), bytes.substr(0, half))
                               : Chunk(0, bytes.substr(half)));
      *chunk = grpc::ByteBuffer(&sl, 1);
      ++sent;
      return true;
    });
  };
  grpc::Status first, second;
  std::thread a([&] { first = push(update(1), true); });
  const uint64_t one = update(1).size();
  while ((*server)->receive_bytes_in_use() != one) absl::SleepFor(absl::Milliseconds(5));
  std::thread b([&] { second = push(update(2), false); });
  // The second waits: nothing arrives while the first holds the budget.
  EXPECT_FALSE((*server)->ReceiveUpdate(absl::Now() + absl::Milliseconds(300)).ok());
  EXPECT_EQ((*server)->receive_bytes_in_use(), one);
  go_on.Notify();
  a.join();
  b.join();
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_TRUE(second.ok()) << second.error_message();
  std::set<uint64_t> rounds;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<ReceivedUpdate> got = (*server)->ReceiveUpdate(absl::Now() + absl::Seconds(5));
    ASSERT_TRUE(got.ok()) << got.status();
    const uint64_t round = got->msg.round();
    EXPECT_EQ(Assemble(*std::move(got)).SerializeAsString(), update(round));
    rounds.insert(round);
  }
  EXPECT_EQ(rounds, (std::set<uint64_t>{1, 2}));
  // The budget is given back when gRPC is done with each call (just after its reply).
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while ((*server)->receive_bytes_in_use() != 0 && absl::Now() < until)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ((*server)->receive_bytes_in_use(), 0u);
  client->reset();
  (*server)->Shutdown(absl::Now() + absl::Seconds(1));
}

// The worker copies updates field by field (UpdateEnvelope in comm/grpc_client.cc) so as not
// to copy their tensors: a new field in these messages must be added there, then here.
TEST(UpdateEnvelopeTest, KnowsEveryField) {
  EXPECT_EQ(v1::UpdateMsg::descriptor()->field_count(), 7);
  EXPECT_EQ(v1::Payload::descriptor()->field_count(), 2);
  EXPECT_EQ(v1::Tensor::descriptor()->field_count(), 3);
}

}  // namespace
}  // namespace fedtrain
