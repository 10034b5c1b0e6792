// PushDecoder without gRPC: a valid chunk stream, cut into pieces anywhere, gives the update
// with its tensors' bytes referenced (pieces of at least min_referenced_piece bytes) or copied;
// malformed, oversized, truncated and refused streams give the reactor's errors. Also
// ParseSessionCredential (comm/membership.h), the session metadata's parser.
#include "comm/push_decoder.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "comm/membership.h"
#include "fedtrain/v1/messages.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// One UpdateChunk: the header when `total` is set, then the data.
std::string Chunk(std::optional<uint64_t> total, const std::vector<uint64_t>& parts,
                  const std::string& data) {
  std::string c;
  if (total.has_value()) {
    c.push_back(0x18);
    Varint(*total, &c);
  }
  if (!parts.empty()) {
    std::string packed;
    for (uint64_t n : parts) Varint(n, &packed);
    c.push_back(0x2A);
    Varint(packed.size(), &c);
    c += packed;
  }
  if (!data.empty()) {
    c.push_back(0x22);
    Varint(data.size(), &c);
    c += data;
  }
  return c;
}

// Feeds `chunk` read in blocks of `block` bytes; the data go in pieces of at most `block`
// bytes, referenced from `keep` (which the pieces hold).
absl::Status Feed(PushDecoder& d, std::shared_ptr<const std::string> chunk, int block) {
  google::protobuf::io::ArrayInputStream in(chunk->data(), static_cast<int>(chunk->size()), block);
  std::vector<PushDecoder::Span> spans;
  if (absl::Status st = d.Parse(&in, &spans); !st.ok()) return st;
  for (const PushDecoder::Span& s : spans) {
    for (uint64_t off = s.offset; off < s.offset + s.length;) {
      const uint64_t n = std::min<uint64_t>(block - off % block, s.offset + s.length - off);
      auto ref = [&chunk](absl::string_view b) {
        return absl::MakeCordFromExternal(b, [held = chunk](absl::string_view) {});
      };
      d.Put(absl::string_view(chunk->data() + off, n), ref);
      off += n;
    }
  }
  return absl::OkStatus();
}

class PushDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    msg_.set_round(3);
    msg_.set_client_id(5);
    msg_.mutable_up()->add_parts()->set_codec("dense/1");
    msg_.mutable_up()->add_parts()->set_codec("topk/1");
    envelope_ = msg_.SerializeAsString();
    a_ = std::string(2000, 'a');  // pieces over 511 bytes: absl::Cord copies shorter ones
    b_ = std::string(1500, 'b');
    all_ = envelope_ + a_ + b_;
  }
  v1::UpdateMsg msg_;
  std::string envelope_, a_, b_, all_;
};

TEST_F(PushDecoderTest, ReassemblesAnUpdateReferencingLongPieces) {
  for (int block : {1, 7, 64, 4096}) {
    PushDecoder d(1 << 20, 16);
    auto first = std::make_shared<const std::string>(
        Chunk(all_.size(), {a_.size(), b_.size()}, all_.substr(0, 1000)));
    auto second = std::make_shared<const std::string>(Chunk(std::nullopt, {}, all_.substr(1000)));
    ASSERT_THAT(Feed(d, first, block), IsOk());
    ASSERT_THAT(Feed(d, second, block), IsOk());
    absl::StatusOr<ReceivedUpdate> u = d.Finish();
    ASSERT_THAT(u, IsOk());
    EXPECT_EQ(u->msg.client_id(), 5u);
    ASSERT_EQ(u->part_data.size(), 2u);
    EXPECT_EQ(std::string(u->part_data[0]), a_);
    EXPECT_EQ(std::string(u->part_data[1]), b_);
    if (block == 4096) {  // pieces of 16 bytes or more: referenced where the chunks lie
      for (const absl::Cord& part : u->part_data) {
        for (absl::string_view piece : part.Chunks()) {
          const bool in_first = piece.data() >= first->data() &&
                                piece.data() + piece.size() <= first->data() + first->size();
          const bool in_second = piece.data() >= second->data() &&
                                 piece.data() + piece.size() <= second->data() + second->size();
          EXPECT_TRUE(in_first || in_second) << "a copied piece of " << piece.size() << " bytes";
        }
      }
    }
  }
}

TEST_F(PushDecoderTest, RefusesWhatTheReactorRefuses) {
  auto feed = [](PushDecoder& d, const std::string& c) {
    return Feed(d, std::make_shared<const std::string>(c), 4096);
  };
  {
    PushDecoder d(1 << 20, 16);
    EXPECT_THAT(feed(d, Chunk(std::nullopt, {}, "xx")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no header")));
  }
  {
    PushDecoder d(100, 16);
    EXPECT_THAT(feed(d, Chunk(all_.size(), {}, "xx")),
                StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("exceeds the limit")));
  }
  {
    PushDecoder d(1 << 20, 16, []() -> absl::StatusOr<uint64_t> {
      return absl::FailedPreconditionError("worker 1 has not joined or was replaced");
    });
    EXPECT_THAT(feed(d, Chunk(all_.size(), {}, "xx")),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not joined")));
  }
  {
    PushDecoder d(1 << 20, 16);
    EXPECT_THAT(feed(d, Chunk(10, {10}, "")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no room")));
  }
  {
    PushDecoder d(1 << 20, 16);
    EXPECT_THAT(feed(d, Chunk(3, {}, "xxxx")),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceed the announced")));
  }
  {
    PushDecoder d(1 << 20, 16);
    std::string c = Chunk(all_.size(), {}, all_);
    c.resize(c.size() - 1);
    EXPECT_THAT(feed(d, c), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data")));
  }
  {
    PushDecoder d(1 << 20, 16);
    ASSERT_THAT(feed(d, Chunk(all_.size(), {a_.size(), b_.size()}, all_.substr(0, 9))), IsOk());
    EXPECT_THAT(d.Finish(), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr(absl::StrCat("got 9 of ", all_.size()))));
  }
  {
    PushDecoder d(1 << 20, 16);
    ASSERT_THAT(feed(d, Chunk(all_.size(), {a_.size() + b_.size()}, all_)), IsOk());
    EXPECT_THAT(d.Finish(), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("2 tensors but its chunks carry 1")));
  }
}

TEST(SessionCredentialTest, ParsesOnlyTheWorkersForm) {
  const std::string secret(32, '\x5a');
  const std::string hex = absl::BytesToHexString(secret);
  std::optional<SessionCredential> c = ParseSessionCredential(absl::StrCat("17.", hex));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->worker_id, 17u);
  EXPECT_EQ(c->secret, secret);
  EXPECT_FALSE(ParseSessionCredential(absl::StrCat("0.", hex)).has_value());
  EXPECT_FALSE(ParseSessionCredential(absl::StrCat("x.", hex)).has_value());
  EXPECT_FALSE(ParseSessionCredential(absl::StrCat("17.", hex.substr(1))).has_value());
  EXPECT_FALSE(ParseSessionCredential(absl::StrCat("17.", absl::AsciiStrToUpper(hex))).has_value());
  EXPECT_FALSE(ParseSessionCredential(absl::StrCat("17", hex)).has_value());
  EXPECT_FALSE(ParseSessionCredential(absl::StrCat(std::string(40, '1'), ".", hex)).has_value());
  EXPECT_FALSE(ParseSessionCredential("").has_value());
}

}  // namespace
}  // namespace fedtrain
