// ReceivedUpdate: an update whose tensors' bytes arrived outside the message
// (ReceivedUpdate::part_data) has the serialized size, the assembled message and the decoded
// payload of the same update delivered whole.
#include "comm/transport.h"

#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "compression/payload_codec.h"
#include "compression/compressor.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

// `m` with each part's bytes moved out into part_data, in two pieces each.
ReceivedUpdate Split(v1::UpdateMsg m) {
  ReceivedUpdate u;
  for (v1::Tensor& t : *m.mutable_up()->mutable_parts()) {
    const std::string& d = t.data();
    absl::Cord& c = u.part_data.emplace_back(d.substr(0, d.size() / 3));
    c.Append(d.substr(d.size() / 3));
    t.clear_data();
  }
  u.msg = std::move(m);
  return u;
}

v1::UpdateMsg Update(const std::vector<size_t>& part_bytes) {
  v1::UpdateMsg m;
  m.set_round(12);
  m.set_client_id(300);
  m.set_num_samples(7);
  (*m.mutable_up()->mutable_scalars())["s"] = 0.5;
  char next = 1;
  for (size_t n : part_bytes) {
    v1::Tensor* t = m.mutable_up()->add_parts();
    t->set_codec("identity/1");
    t->set_dim(n / 4);
    t->set_data(std::string(n, next++));
  }
  return m;
}

TEST(ReceivedUpdateTest, SerializedSizeIsTheWholeMessagesAcrossVarintWidths) {
  // Sizes on both sides of each varint width (1, 2, 3 and 4 bytes) of a part's data, of the
  // part and of the payload that hold it.
  const std::vector<size_t> sizes = {0,     1,      120,    124,     127,     128,
                                     16376, 16380,  16383,  16384,   2097140, 2097150,
                                     2097151, 2097152, 2097160};
  for (size_t n : sizes) {
    for (size_t parts : {1, 3}) {
      const v1::UpdateMsg whole = Update(std::vector<size_t>(parts, n));
      const ReceivedUpdate u = Split(whole);
      EXPECT_EQ(SerializedSize(u), whole.ByteSizeLong()) << parts << " parts of " << n;
    }
  }
  const v1::UpdateMsg mixed = Update({0, 5, 130, 16390, 3});
  EXPECT_EQ(SerializedSize(Split(mixed)), mixed.ByteSizeLong());
  const ReceivedUpdate as_is{mixed, {}};
  EXPECT_EQ(SerializedSize(as_is), mixed.ByteSizeLong());
}

TEST(ReceivedUpdateTest, AssembleGivesTheWholeMessage) {
  const v1::UpdateMsg whole = Update({8, 0, 400});
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(Assemble(Split(whole)), whole));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(Assemble({whole, {}}), whole));
}

TEST(ReceivedUpdateTest, DecodePayloadReadsEitherForm) {
  const size_t dim = 64;
  v1::UpdateMsg whole = Update({dim * 4, dim * 4});
  for (v1::Tensor& t : *whole.mutable_up()->mutable_parts()) {
    std::string* d = t.mutable_data();
    for (size_t i = 0; i < dim; ++i) {
      const float v = static_cast<float>(i) - 3.5f;
      d->replace(i * 4, 4, reinterpret_cast<const char*>(&v), 4);
    }
  }
  const IdentityCompressor codec(dim);
  Payload a, b;
  FT_ASSERT_OK(DecodePayload(whole.up(), codec, 2, dim, &a));
  const ReceivedUpdate u = Split(whole);
  FT_ASSERT_OK(DecodePayload(u.msg.up(), u.part_data, codec, 2, dim, &b));
  EXPECT_EQ(a.parts, b.parts);
  EXPECT_EQ(a.scalars, b.scalars);
  // A transport that broke the form is caught, not read past.
  EXPECT_THAT(DecodePayload(u.msg.up(), absl::MakeConstSpan(u.part_data).subspan(1), codec, 2,
                            dim, &b),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("1 received separately")));
  EXPECT_THAT(DecodePayload(whole.up(), u.part_data, codec, 2, dim, &b),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both in the tensor")));
}

}  // namespace
}  // namespace fedtrain
