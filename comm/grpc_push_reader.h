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
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "comm/grpc_server.h"
#include "grpcpp/grpcpp.h"

namespace fedtrain {

// Client stream of one update: size-checks, reassembles, parses, enqueues. Reads the
// UpdateChunk messages as raw bytes (the method is registered as a raw callback method) and
// decodes their few fields here. The envelope (the serialized UpdateMsg without its tensors'
// bytes) is copied out and parsed; each tensor's bytes are not copied at all: they stay in
// the slices gRPC received them in, referenced (absl::Cord pieces that hold the slices) from
// the ReceivedUpdate's part_data, where DecodePayload reads them. Where a parsed UpdateChunk
// and a parsed UpdateMsg would copy every byte three times in user space, the reactor only
// parses, size-checks and enqueues, and gRPC reads on.
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

  // Decodes the chunk in raw_: header fields (starting the update on the first chunk) and
  // where its data lie, checked to be all there; OK or the refusal.
  grpc::Status Parse(std::vector<std::pair<uint64_t, uint64_t>>* spans);
  // The first chunk: announced size and the tensors' sizes.
  absl::Status Start(bool has_header, uint64_t total, const std::vector<uint64_t>& part_bytes);
  // Bytes destination i has so far (0: the envelope, i > 0: tensor i - 1).
  uint64_t Have(size_t i) const;
  // Appends `piece`, which lies in `slice`, to the destinations, in order: the envelope is
  // copied, the tensors' bytes referenced. The caller checked that it fits.
  void Put(absl::string_view piece, const grpc::Slice& slice);
  // Takes the data `spans` of `chunk` into the destinations; false when they do not lie
  // within it (Parse checked that they do).
  bool Take(const grpc::ByteBuffer& chunk,
            const std::vector<std::pair<uint64_t, uint64_t>>& spans);
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
  bool started_ = false;
  uint64_t total_ = 0, filled_ = 0;
  // Receive budget: the bytes this push holds, and while it waits for room, the chunk it
  // stopped at (guarded by the transport's mutex, as is finished_).
  uint64_t reserved_ = 0;
  bool parked_ = false, finished_ = false;
  grpc::ByteBuffer parked_chunk_;
  std::vector<std::pair<uint64_t, uint64_t>> parked_spans_;
  // The envelope, then the tensors: want_[i] bytes each, filled in order (cursor_ is the
  // first that is not full).
  std::vector<uint64_t> want_;
  std::string envelope_;
  std::vector<absl::Cord> parts_;
  size_t cursor_ = 0;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_COMM_GRPC_PUSH_READER_H_
