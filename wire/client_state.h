// A client's persistent state between its rounds (control variates, dual variables, error-
// feedback memory), as named vectors so a ClientStateStore can keep it in memory or on disk
// and checkpoint it. Three writers share it, each under its own key prefix so that they cannot
// collide: the algorithm's client half (its own names, e.g. "c", "fedspeed.ghat"), the uplink's
// error feedback ("ef.", compression/uplink_codec.h) and the Worker's state versioning
// ("__ft.prev.", client/worker.h). Plain data: thread-compatible.
#ifndef FEDTRAIN_WIRE_CLIENT_STATE_H_
#define FEDTRAIN_WIRE_CLIENT_STATE_H_

#include <map>
#include <string>
#include <vector>

namespace fedtrain {

// Per-client persistent state (control variates, EF memory, ...); survives absent rounds.
// `wide` holds double-precision vectors (error-feedback errors and trackers,
// docs/compression.md §0), keyed like "ef.e.0" (error of up part 0).
struct ClientState {
  std::map<std::string, std::vector<float>> vectors;
  std::map<std::string, std::vector<double>> wide;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_WIRE_CLIENT_STATE_H_
