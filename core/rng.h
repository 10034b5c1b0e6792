// Counter-based random streams keyed by (seed, round, client, purpose).
//
// RngStream::For(seed, round, client, purpose) always yields the same sequence, in any
// thread, process or transport: the key of a Threefry-4x64-20 block cipher (Random123) is
// the 4-tuple itself and the counter is the position in the stream. There is no global
// state and nothing depends on the order in which streams are created or used.
// Thread-compatible: one stream per task; copying a stream copies its position.
// Never use absl::BitGen or std::*_distribution for anything that affects results: their
// output is not specified across library versions.
#ifndef FEDTRAIN_CORE_RNG_H_
#define FEDTRAIN_CORE_RNG_H_

#include <cstdint>
#include <utility>

#include "absl/types/span.h"

namespace fedtrain {

// What a stream is for. Values are part of the reproducibility contract: never renumber.
enum class Purpose : uint64_t {
  kSampling = 1,      // which clients a round selects (client field = 0)
  kMinibatch = 2,     // minibatch order of a client's local steps
  kPartition = 3,     // partitioners (round = 0, client = 0)
  kModelInit = 4,     // initial weights (round = 0, client = 0)
  kSyntheticData = 5, // Synthetic(alpha, beta) generator (client = device)
  kCompression = 6,   // randomized compressors
  kPrivacy = 7,       // privacy noise
  kDataShuffle = 8,   // data set level shuffles
  kReducer = 9,       // randomized reducers (Flag Aggregator random init; client = 0)
  kAttack = 10,       // fault injection (attacks/attack.h; client = the faulty client)
  kTest = 100,        // unit tests
};

class RngStream {
 public:
  static RngStream For(uint64_t seed, uint64_t round, uint64_t client, Purpose purpose) {
    return RngStream(seed, round, client, static_cast<uint64_t>(purpose));
  }
  RngStream(uint64_t seed, uint64_t round, uint64_t client, uint64_t purpose);

  uint64_t NextU64();
  uint32_t NextU32() { return static_cast<uint32_t>(NextU64() >> 32); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform();
  // Uniform in (0, 1]: safe for log().
  double UniformPositive() { return 1.0 - Uniform(); }
  // Uniform integer in [0, n), unbiased (rejection); n > 0.
  uint64_t UniformInt(uint64_t n);
  // Standard normal (Box-Muller; the second value of a pair is cached).
  double Normal();
  double Normal(double mean, double stddev) { return mean + stddev * Normal(); }
  // Gamma(shape, 1), shape > 0 (Marsaglia-Tsang; shape < 1 via the U^(1/a) boost).
  double Gamma(double shape);
  // Fisher-Yates shuffle, back to front.
  template <typename T>
  void Shuffle(absl::Span<T> v) {
    for (size_t i = v.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(UniformInt(i));
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  uint64_t key_[4];
  uint64_t counter_ = 0;   // next block index
  uint64_t block_[4];
  int used_ = 4;           // words of block_ consumed
  bool has_normal_ = false;
  double cached_normal_ = 0.0;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_RNG_H_
