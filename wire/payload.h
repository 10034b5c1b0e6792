// The values that travel between a client half and a server half, as the algorithms see them:
// a Payload (vectors and named scalars, either direction) and a ClientUpdate (one client's
// decoded, validated up payload with its metadata). They sit below both the algorithms
// (aggregators/) and the code that encodes them for a transport (compression/payload_codec.h),
// so neither has to include the other. Plain data: thread-compatible, no invariants.
#ifndef FEDTRAIN_WIRE_PAYLOAD_H_
#define FEDTRAIN_WIRE_PAYLOAD_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/vec.h"

namespace fedtrain {

// Vectors (each d floats) and named scalars exchanged between the halves. parts[0] of the
// down payload is always the global model x.
struct Payload {
  std::vector<std::vector<float>> parts;
  std::map<std::string, double> scalars;
};

// A decoded, validated client message, as the server half sees it. `parts` view vectors that
// the Coordinator owns for the round.
struct ClientUpdate {
  ClientId id = 0;
  uint64_t num_samples = 0;  // n_i
  int64_t steps = 0;         // K_i actually run
  std::vector<ConstVec> parts;
  // Per part: true when the part is an error-feedback tracker's dense initialisation
  // (identity codec) rather than a compressed message. Empty means all false.
  std::vector<bool> dense;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_WIRE_PAYLOAD_H_
