#include "comm/transport.h"

#include <utility>

#include "google/protobuf/io/coded_stream.h"

namespace fedtrain {
namespace {

// Bytes of a length-delimited field of `n` bytes whose field number is below 16 (one tag
// byte): Tensor.data (3), Payload.parts (1) and UpdateMsg.up (3) all are.
uint64_t FieldBytes(uint64_t n) {
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(n) + n;
}

}  // namespace

uint64_t SerializedSize(const ReceivedUpdate& u) {
  const v1::UpdateMsg& m = u.msg;
  const uint64_t as_is = m.ByteSizeLong();
  if (u.part_data.empty() || !m.has_up() ||
      u.part_data.size() != static_cast<size_t>(m.up().parts_size()))
    return as_is;
  // Each part grows by its data field; that lengthens the part's own length prefix in the
  // payload, and the payload's in the message.
  const v1::Payload& up = m.up();
  const uint64_t up_as_is = up.ByteSizeLong();
  uint64_t up_full = up_as_is;
  for (int i = 0; i < up.parts_size(); ++i) {
    const uint64_t part_as_is = up.parts(i).ByteSizeLong();
    const uint64_t n = u.part_data[static_cast<size_t>(i)].size();
    const uint64_t part_full = part_as_is + (n == 0 ? 0 : FieldBytes(n));
    up_full += FieldBytes(part_full) - FieldBytes(part_as_is);
  }
  return as_is - FieldBytes(up_as_is) + FieldBytes(up_full);
}

v1::UpdateMsg Assemble(ReceivedUpdate u) {
  if (u.part_data.size() == static_cast<size_t>(u.msg.up().parts_size())) {
    for (size_t i = 0; i < u.part_data.size(); ++i) {
      v1::Tensor* t = u.msg.mutable_up()->mutable_parts(static_cast<int>(i));
      absl::CopyCordToString(u.part_data[i], t->mutable_data());
    }
  }
  return std::move(u.msg);
}

Task Task::From(v1::TaskMsg m) {
  Task t;
  t.client_id = m.client_id();
  t.accepted_through = m.accepted_through();
  t.common = std::make_shared<const v1::TaskMsg>(std::move(m));
  return t;
}

Task Task::Borrow(const v1::TaskMsg& m) {
  Task t;
  t.client_id = m.client_id();
  t.accepted_through = m.accepted_through();
  t.common = std::shared_ptr<const v1::TaskMsg>(std::shared_ptr<void>(), &m);  // not owned
  return t;
}

v1::TaskMsg Task::Message() const {
  v1::TaskMsg m = *common;
  m.set_client_id(client_id);
  m.set_accepted_through(accepted_through);
  return m;
}

uint64_t Task::ByteSize() const {
  // A message's serialized size is the sum of its fields' sizes, so with the client's fields
  // unset in the common part, Message()'s size is the common part's plus that of a message
  // holding only the client's fields.
  if (common->client_id() != 0 || common->accepted_through() != 0)
    return Message().ByteSizeLong();  // a task made From() a whole message
  v1::TaskMsg own;
  own.set_client_id(client_id);
  own.set_accepted_through(accepted_through);
  return static_cast<uint64_t>(common->ByteSizeLong() + own.ByteSizeLong());
}

}  // namespace fedtrain
