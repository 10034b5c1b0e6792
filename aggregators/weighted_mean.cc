// Implementation of weighted_mean.h: the blocked, vectorisable weighted-sum kernel.
// Thread-safety: stateless; each block is written by exactly one thread.
#include "aggregators/weighted_mean.h"

#include <algorithm>
#include <cstddef>

#include "absl/strings/str_cat.h"

// Contracting w * x + acc into a fused multiply-add rounds once instead of twice. That would
// change the bits, and would make them depend on -march (FMA exists only on some targets)
// and on which loop, vector or scalar, handled a coordinate. The determinism contract in the
// header is "two roundings per term", so contraction is off for this file whatever the flags.
// Everything that follows is our own code; the included headers keep their settings.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace fedtrain {
namespace {

// Checks the shapes shared by both entry points; `dim` is the output length.
absl::Status CheckShapes(absl::Span<const ConstVec> in, absl::Span<const double> w,
                         size_t dim) {
  if (in.size() != w.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        in.size(), " updates but ", w.size(), " weights; pass exactly one weight per update"));
  }
  for (size_t k = 0; k < in.size(); ++k) {
    if (in[k].size() != dim) {
      return absl::InvalidArgumentError(
          absl::StrCat("update ", k, " has ", in[k].size(), " floats; expected ", dim));
    }
  }
  return absl::OkStatus();
}

// acc[0, n) += sum over k of w[k] * in[k][begin, begin + n), k ascending per coordinate.
//
// kFixedN != 0 makes the trip count a compile-time constant (a full block). That matters at
// -O2: GCC's default "very cheap" vectoriser cost model only vectorises a loop whose trip
// count is a known multiple of the vector width. The last, partial block (kFixedN == 0) may
// run scalar; since each coordinate is independent and does the same operations in the same
// order either way, the bits do not depend on which loop handled it.
//
// Four updates are folded per pass over `acc`: per coordinate the adds still happen in order
// k, k+1, k+2, k+3, while acc is loaded and stored a quarter as often and four input streams
// keep the hardware prefetchers busy.
template <size_t kFixedN>
void AccumulateBlock(const ConstVec* in, const double* w, size_t num_updates, size_t begin,
                     size_t n, double* __restrict acc) {
  const size_t len = kFixedN != 0 ? kFixedN : n;
  size_t k = 0;
  for (; k + 4 <= num_updates; k += 4) {
    const float* __restrict x0 = in[k].data() + begin;
    const float* __restrict x1 = in[k + 1].data() + begin;
    const float* __restrict x2 = in[k + 2].data() + begin;
    const float* __restrict x3 = in[k + 3].data() + begin;
    const double w0 = w[k], w1 = w[k + 1], w2 = w[k + 2], w3 = w[k + 3];
    for (size_t j = 0; j < len; ++j) {
      double a = acc[j];
      a += w0 * static_cast<double>(x0[j]);
      a += w1 * static_cast<double>(x1[j]);
      a += w2 * static_cast<double>(x2[j]);
      a += w3 * static_cast<double>(x3[j]);
      acc[j] = a;
    }
  }
  for (; k < num_updates; ++k) {
    const float* __restrict x = in[k].data() + begin;
    const double wk = w[k];
    for (size_t j = 0; j < len; ++j) acc[j] += wk * static_cast<double>(x[j]);
  }
}

// One block of WeightedMean: sum into an L1-resident accumulator, then round to float once.
template <size_t kFixedN>
void MeanBlock(const ConstVec* in, const double* w, size_t num_updates, size_t begin,
               size_t n, float* __restrict out) {
  const size_t len = kFixedN != 0 ? kFixedN : n;
  alignas(64) double acc[kWeightedMeanBlock];
  // Start from +0.0, as the plain loop in the header does (it decides the sign of a zero sum).
  for (size_t j = 0; j < len; ++j) acc[j] = 0.0;
  AccumulateBlock<kFixedN>(in, w, num_updates, begin, len, acc);
  for (size_t j = 0; j < len; ++j) out[j] = static_cast<float>(acc[j]);
}

// Calls block_fn(begin, n) for each block of [0, dim), on the pool when there is one. Every
// block is one task, so which thread runs it cannot change what it computes.
template <typename BlockFn>
void ForEachBlock(size_t dim, ThreadPool* pool, const BlockFn& block_fn) {
  const size_t num_blocks = (dim + kWeightedMeanBlock - 1) / kWeightedMeanBlock;
  auto run = [&](size_t b) {
    const size_t begin = b * kWeightedMeanBlock;
    block_fn(begin, std::min(kWeightedMeanBlock, dim - begin));
  };
  if (pool == nullptr || num_blocks <= 1) {
    for (size_t b = 0; b < num_blocks; ++b) run(b);
  } else {
    pool->ParallelFor(num_blocks, run);
  }
}

}  // namespace

absl::Status WeightedMean(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                          ThreadPool* pool) {
  if (in.empty()) {
    return absl::InvalidArgumentError(
        "WeightedMean: no updates to reduce; the caller must skip an empty round");
  }
  if (absl::Status s = CheckShapes(in, w, out.size()); !s.ok()) return s;
  ForEachBlock(out.size(), pool, [&](size_t begin, size_t n) {
    float* dst = out.data() + begin;
    if (n == kWeightedMeanBlock) {
      MeanBlock<kWeightedMeanBlock>(in.data(), w.data(), in.size(), begin, n, dst);
    } else {
      MeanBlock<0>(in.data(), w.data(), in.size(), begin, n, dst);
    }
  });
  return absl::OkStatus();
}

absl::Status WeightedAccumulate(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                absl::Span<double> acc, ThreadPool* pool) {
  if (absl::Status s = CheckShapes(in, w, acc.size()); !s.ok()) return s;
  if (in.empty()) return absl::OkStatus();
  ForEachBlock(acc.size(), pool, [&](size_t begin, size_t n) {
    double* dst = acc.data() + begin;
    if (n == kWeightedMeanBlock) {
      AccumulateBlock<kWeightedMeanBlock>(in.data(), w.data(), in.size(), begin, n, dst);
    } else {
      AccumulateBlock<0>(in.data(), w.data(), in.size(), begin, n, dst);
    }
  });
  return absl::OkStatus();
}

}  // namespace fedtrain
