// The server's reduce kernel: the weighted sum of K client updates of d floats, accumulated
// in double in client order (docs/architecture.md "Performance model", docs/maintainers.md §5
// "Determinism").
//
// Thread-safety: pure functions with no state; concurrent calls are safe as long as their
// outputs do not overlap each other or any input. A call may spread its work over a
// borrowed ThreadPool, which it never owns or keeps.
//
// Determinism: for every coordinate j the kernel computes, in IEEE double,
//   acc = 0.0;  for k = 0, 1, ..., K-1:  acc = acc + w[k] * double(in[k][j]);
// with no fused multiply-add and no reassociation, then rounds acc to float once. The
// result is therefore bit-identical for any pool, thread count, block size and CPU vector
// width, and equal to the plain double loop above (a sum that starts at +0.0, so an
// all-(-0.0) column gives +0.0).
//
// Cost: memory-bound. Each input float is read from memory once: the coordinates are cut
// into blocks of kWeightedMeanBlock, and a block's double accumulator stays in L1 while all
// K updates stream through it (the naive "for k: for j" order would stream a d-double
// accumulator from memory K times).
#ifndef FEDTRAIN_AGGREGATORS_WEIGHTED_MEAN_H_
#define FEDTRAIN_AGGREGATORS_WEIGHTED_MEAN_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/thread_pool.h"
#include "core/vec.h"

namespace fedtrain {

// Coordinates per block, the unit of work given to one thread. 2048 doubles = 16 KiB, which
// leaves room in a 32-48 KiB L1 for the input lines in flight. Results do not depend on it.
inline constexpr size_t kWeightedMeanBlock = 2048;

// out[j] = float(sum over k of w[k] * in[k][j]), summed in double in the order k = 0..K-1
// (callers pass updates sorted by client id). The weights need not sum to 1: the caller
// normalises. `pool` may be null (run on the calling thread); with a pool, the call must
// not come from one of that pool's own threads (ThreadPool::ParallelFor). `out` must not
// overlap any input.
// InvalidArgument when `in` is empty, when in.size() != w.size(), or when an update's size
// differs from out.size(); `out` is untouched then.
absl::Status WeightedMean(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                          ThreadPool* pool = nullptr);

// acc[j] += sum over k of w[k] * in[k][j], in the order k = 0..K-1, for a caller-owned double
// accumulator. Calling it on consecutive groups of updates (in client order) and rounding
// acc to float at the end gives exactly WeightedMean's result when acc starts at zero, so a
// server can fold updates in as they arrive. An empty `in` adds nothing and is OK.
// InvalidArgument when in.size() != w.size() or an update's size differs from acc.size().
absl::Status WeightedAccumulate(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                absl::Span<double> acc, ThreadPool* pool = nullptr);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_WEIGHTED_MEAN_H_
