// data.dataset "files": a user's labelled data set from files (docs/data.md).
//   idx  MNIST-style IDX files (images of uint8, labels of uint8; plain or .gz): MNIST digits,
//        Fashion-MNIST, EMNIST, KMNIST...
//   npy  NumPy arrays: features of shape (n, ...) of any numeric dtype (flattened per row),
//        labels of shape (n,) or (n, 1) of integers (or integral floats)
//   npz  a NumPy archive (numpy.savez or savez_compressed) holding both arrays, named by
//        data.files.features_array / labels_array ("x", "y")
//   csv  a comma-separated table with a header row: the label column, optionally a client-id
//        column, every other column a numeric feature
// uint8 features are scaled to [0, 1] (x / 255) unless data.normalize is "none"; other
// dtypes are taken as stored. Without test files, a seeded fraction of the training rows is
// held out (data.files.test_fraction). Every defect is an InvalidArgument (NotFound for a
// missing file) naming the file and the row, column or field: shapes that disagree, a
// non-numeric cell, a NaN or infinite feature, a label out of range, a missing column.
#ifndef FEDTRAIN_RUNTIME_FILE_DATA_H_
#define FEDTRAIN_RUNTIME_FILE_DATA_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

struct FileData {
  Dataset train, test;
  // csv with data.files.client_column: the client id of each training row (else empty).
  std::vector<int64_t> train_clients;
};

// `seed` shuffles the hold-out split (the data seed).
absl::StatusOr<FileData> LoadFileData(const v1::DataConfig& cfg, uint64_t seed);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_FILE_DATA_H_
