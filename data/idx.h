// Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed (zlib).
// Debian's dataset-fashion-mnist ships the four .gz files under
// /usr/share/datasets/fashion-mnist.
#ifndef FEDTRAIN_DATA_IDX_H_
#define FEDTRAIN_DATA_IDX_H_

#include <string>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace fedtrain {

inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Reads an images file (magic 0x00000803, uint8 pixels p, stored as float(p) / 255 in [0, 1],
// or as float(p) when `scale` is false) and a labels file (magic 0x00000801) into a Dataset
// with `num_classes` classes. NotFound for a missing file; DataLoss (naming the file and what
// is wrong) for a bad magic, truncated data, mismatched counts or a label >= num_classes.
absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                int num_classes = 10, bool scale = true);

// The train (60,000) or test (10,000) split from `dir` with the standard file names
// ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz); `scale` as in LoadIdx.
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, bool train, bool scale = true);

}  // namespace fedtrain

#endif  // FEDTRAIN_DATA_IDX_H_
