// Partitioners: split a data set over N clients as per-client index lists (no copies).
// docs/federated.md §7.1-§7.3. Deterministic: all randomness from
// RngStream(seed, attempt, 0, kPartition).
#ifndef FEDTRAIN_DATA_PARTITION_H_
#define FEDTRAIN_DATA_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace fedtrain {

struct Partition {
  std::vector<std::vector<uint32_t>> clients;  // client id -> sample indices
  int num_clients() const { return static_cast<int>(clients.size()); }
};

// §7.1: shuffle, contiguous blocks of floor(n/N), remainder to client 0.
absl::StatusOr<Partition> PartitionIid(const Dataset& d, int num_clients, uint64_t seed);

// §7.2 D1 (NIID-Bench): per-class Dirichlet(alpha) proportions over clients with the
// balancing step, repeated until every client has >= min_size samples. Every sample is used
// exactly once. FailedPrecondition naming alpha and min_size if 1000 attempts do not succeed.
absl::StatusOr<Partition> PartitionDirichlet(const Dataset& d, int num_clients, double alpha,
                                             uint64_t seed, size_t min_size = 10);

// §7.3 exact-k-class shards: every class is cut into equal shards and each client receives
// k shards of k different classes, so every client holds exactly k labels. Requires
// num_clients * k to be a multiple of the number of classes and every class to have at least
// num_clients * k / classes samples (InvalidArgument otherwise).
// Samples left over by the integer division of a class into shards are dropped (counted in
// the error-free result: sizes sum to <= n).
absl::StatusOr<Partition> PartitionShards(const Dataset& d, int num_clients,
                                          int classes_per_client, uint64_t seed);

// Per-client label counts: result[client][class].
std::vector<std::vector<int64_t>> ClassHistogram(const Dataset& d, const Partition& p);

}  // namespace fedtrain

#endif  // FEDTRAIN_DATA_PARTITION_H_
