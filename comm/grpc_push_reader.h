// The server's reactor of one Push call (GrpcServerTransport::UpdateReader): reads an update's
// UpdateChunk messages as raw bytes, size-checks and reassembles them, and hands the update to
// the transport's queue. Internal to comm_grpc (grpc_server.cc creates one per Push call);
// not part of the transport's interface.
// Thread-safety: gRPC runs one reactor's callbacks one at a time, so its own fields need no
// lock; the transport's state is read and changed under the transport's mutex.
// Ownership: a reader deletes itself when gRPC is done with its call (OnDone). It points to the
// transport, which shuts its server down before it goes away. The tensors' bytes stay in
// gRPC's receive buffers, referenced from the update (ReceivedUpdate::part_data) that the
// transport's queue and then the round loop own.
#ifndef FEDTRAIN_COMM_GRPC_PUSH_READER_H_
#define FEDTRAIN_COMM_GRPC_PUSH_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "comm/grpc_server.h"
#include "comm/push_decoder.h"
#include "grpcpp/grpcpp.h"

namespace fedtrain {

// Client stream of one update: size-checks, reassembles, parses, enqueues. Reads the
// UpdateChunk messages as raw bytes (the method is registered as a raw callback method) and
// decodes them with a PushDecoder (comm/push_decoder.h). The envelope (the serialized
// UpdateMsg without its tensors' bytes) is copied out and parsed; each tensor's bytes are not
// copied at all: they stay in the slices gRPC received them in, referenced (absl::Cord pieces
// that hold the slices) from the ReceivedUpdate's part_data, where DecodePayload reads them.
// Where a parsed UpdateChunk and a parsed UpdateMsg would copy every byte three times in user
// space, the reactor only parses, size-checks and enqueues, and gRPC reads on.
class GrpcServerTransport::UpdateReader final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // A push from worker `worker_id` (authenticated by the caller, which counted it in the
  // worker's open pushes).
  UpdateReader(GrpcServerTransport* t, std::string peer, uint64_t worker_id);
  void OnReadDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  // Goes on after waiting for room in the receive budget (which it now holds): takes the
  // chunk it stopped at and reads on. Called without the transport's mutex.
  void Resume();

 private:
  friend class GrpcServerTransport;  // its receive budget hands room to waiting pushes

  // Decodes the chunk in raw_ (PushDecoder::Parse): where its data lie, or the refusal.
  grpc::Status Parse(std::vector<PushDecoder::Span>* spans);
  // Takes the data `spans` of `chunk` into the decoder: the envelope is copied, the tensors'
  // bytes referenced where they lie in gRPC's slices; false when the spans do not lie within
  // the chunk (Parse checked that they do).
  bool Take(const grpc::ByteBuffer& chunk, const std::vector<PushDecoder::Span>& spans);
  static grpc::Status MalformedStatus(const std::string& what);
  void Complete();
  // Ends the call with `s` and records the refusal for the round's metrics.
  void Refuse(const grpc::Status& s);
  // Finish(s), once; false when the call was already finished.
  bool FinishOnce(const grpc::Status& s);

  GrpcServerTransport* const t_;
  const std::string peer_;
  const uint64_t worker_id_;
  grpc::ByteBuffer raw_;
  // Size checks and reassembly; asks the transport at the first chunk whether the worker is
  // still a member.
  PushDecoder decoder_;
  // Receive budget: the bytes this push holds, and while it waits for room, the chunk it
  // stopped at (guarded by the transport's mutex, as is finished_).
  uint64_t reserved_ = 0;
  bool parked_ = false, finished_ = false;
  grpc::ByteBuffer parked_chunk_;
  std::vector<PushDecoder::Span> parked_spans_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_GRPC_PUSH_READER_H_
