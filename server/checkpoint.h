// Server checkpoints: a CoordinatorSnapshot on disk, written atomically, read back with every
// field checked. `fedtrain server` writes one every checkpoint.every rounds (and after the
// last) and `--resume` continues from it.
//
// File: "FTCKPT01" | u64 length | the serialized v1::Checkpoint (proto/fedtrain/v1/
// messages.proto) | u64 FNV-1a 64 (core/vec.h) of the length and message bytes; little-endian.
// Save writes "<path>.tmp.<pid>", fsync()s it, renames it over `path` and fsync()s the folder,
// so a crash at any point leaves the previous checkpoint or the new one, never a torn file.
#ifndef FEDTRAIN_SERVER_CHECKPOINT_H_
#define FEDTRAIN_SERVER_CHECKPOINT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/coordinator.h"

namespace fedtrain {

// What ties a checkpoint to its run: the algorithm's name and a fingerprint of the resolved
// config (ConfigFingerprint in sim/simulate.h).
struct CheckpointIdentity {
  std::string algorithm;
  std::string config_fingerprint;
};

absl::Status SaveCheckpoint(const std::string& path, const CoordinatorSnapshot& snap,
                            const CheckpointIdentity& id);

// NotFound when `path` does not exist; DataLoss (naming the file) when it is damaged;
// FailedPrecondition when it belongs to another algorithm or config (naming which).
absl::StatusOr<CoordinatorSnapshot> LoadCheckpoint(const std::string& path,
                                                   const CheckpointIdentity& expect);
// The same for a checkpoint file's bytes `file`, named `name` in errors (LoadCheckpoint reads
// the file and calls this; fuzz/checkpoint_fuzzer.cc feeds it arbitrary bytes).
absl::StatusOr<CoordinatorSnapshot> ParseCheckpoint(absl::string_view file,
                                                    const std::string& name,
                                                    const CheckpointIdentity& expect);

}  // namespace fedtrain

#endif  // FEDTRAIN_SERVER_CHECKPOINT_H_
