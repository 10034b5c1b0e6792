// libFuzzer target: the checkpoint reader (ParseCheckpoint in server/checkpoint.h, the part of
// LoadCheckpoint that reads a file's bytes) on arbitrary files.
//
// Input: byte 0 picks the mode. Bit 0 clear: the rest is the file as it is (magic, length,
// message, checksum). Bit 0 set: the rest is the message body, framed here with the magic, its
// length and its checksum, so mutations reach the message's parser and the checks after it;
// bit 1 then expects the identity the body itself names (so the identity check passes too).
// Checks: no crash; a snapshot read back agrees with the message it came from.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/vec.h"
#include "fedtrain/v1/messages.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "server/checkpoint.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "checkpoint_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

// Once, before the first input: protobuf logs an error for every string field that is not
// UTF-8; at a line per input the log, not the code, would set the pace.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  fedtrain::CheckpointIdentity expect{"fedavg", "seed-fingerprint"};
  std::string file;
  if (mode & 1) {
    const uint64_t len = rest.size();
    file.assign("FTCKPT01");
    file.append(reinterpret_cast<const char*>(&len), sizeof(len));
    file.append(rest.data(), rest.size());
    uint64_t sum = fedtrain::Fnv1a64(&len, sizeof(len));
    sum = fedtrain::Fnv1a64(rest.data(), rest.size(), sum);
    file.append(reinterpret_cast<const char*>(&sum), sizeof(sum));
    if (mode & 2) {
      fedtrain::v1::Checkpoint c;
      if (c.ParseFromArray(rest.data(), static_cast<int>(rest.size())))
        expect = {c.algorithm(), c.config_fingerprint()};
    }
  } else {
    file.assign(rest.data(), rest.size());
  }
  const absl::StatusOr<fedtrain::CoordinatorSnapshot> s =
      fedtrain::ParseCheckpoint(file, "fuzz", expect);
  if (!s.ok()) return 0;
  // Read back: the body is the message it was read from.
  fedtrain::v1::Checkpoint c;
  Check(file.size() >= 24 &&
            c.ParseFromArray(file.data() + 16, static_cast<int>(file.size() - 24)),
        "an accepted checkpoint's body parses");
  Check(s->state.round == c.round(), "round");
  Check(s->state.x.size() * sizeof(float) == c.model().size(), "model size");
  Check(s->state.vectors.size() <= static_cast<size_t>(c.vectors_size()), "vectors");
  for (const auto& [k, v] : s->state.vectors)
    Check(v.size() * sizeof(float) == c.vectors().at(k).size(), "vector size");
  for (const auto& [k, v] : s->algorithm_extra)
    Check(v.size() * sizeof(double) == c.algorithm_extra().at(k).size(), "extra size");
  Check(s->accepted_through.size() <= static_cast<size_t>(c.accepted_ids_size()),
        "accepted_through");
  Check(c.algorithm() == expect.algorithm && c.config_fingerprint() == expect.config_fingerprint,
        "identity");
  return 0;
}
