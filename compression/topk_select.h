// Exact Top-K selection (docs/compression.md §1.2): the indices of the k largest |x_j|,
// ties broken by the smaller index, so the result is a deterministic function of x.
// Pure and single-threaded.
#ifndef FEDTRAIN_COMPRESSION_TOPK_SELECT_H_
#define FEDTRAIN_COMPRESSION_TOPK_SELECT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace fedtrain {

// Writes into `out` (resized) the indices of the min(k, nnz(x)) non-zero entries of largest
// magnitude, sorted ascending: every kept |x_j| >= every dropped one, and among equal
// magnitudes the smaller index is kept. k may exceed nnz(x) (then every non-zero is kept).
// InvalidArgument naming the index of the first NaN or infinity (selection needs an order).
// x.size() must be < 2^32.
absl::Status TopKIndices(absl::Span<const float> x, size_t k, std::vector<uint32_t>* out);
absl::Status TopKIndices(absl::Span<const double> x, size_t k, std::vector<uint32_t>* out);

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_TOPK_SELECT_H_
