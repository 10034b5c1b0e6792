// NumPy .npy files (format versions 1.0, 2.0 and 3.0; little-endian float32 '<f4' or
// float64 '<f8'; C order), for `fedtrain aggregate`: a p x n matrix in, an n-vector out.
// Every malformed file is an InvalidArgument naming the file and what is wrong (magic,
// version, header, dtype, order, shape, truncated or trailing data). Thread-compatible.
#ifndef FEDTRAIN_RUNTIME_NPY_H_
#define FEDTRAIN_RUNTIME_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedtrain {

struct NpyMatrix {
  size_t rows = 0, cols = 0;
  std::string dtype;        // "<f4" or "<f8" as read
  std::vector<float> data;  // rows * cols, row-major; float64 files are rounded to float32
  bool lossless = true;     // false when a float64 value did not fit float32 exactly
};

// A 2-D array (shape (p, n), p >= 1, n >= 1).
absl::StatusOr<NpyMatrix> ParseNpyMatrix(const std::string& bytes, const std::string& name);
absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path);

// Any numeric array (data sets: runtime/file_data.h): shape of >= 1 dimensions, C order,
// little-endian (or single-byte) dtype among bool, int8/16/32/64, uint8/16/32/64, float32/64.
struct NpyArray {
  std::vector<size_t> shape;
  std::string dtype;  // as in the header, e.g. "|u1", "<i8", "<f4"
  std::string bytes;  // the raw data, shape-product * item size
  size_t size() const;  // the number of elements
};
absl::StatusOr<NpyArray> ParseNpyArray(std::string bytes, const std::string& name);
absl::StatusOr<NpyArray> ReadNpyArray(const std::string& path);
// The array `array` ("x" for the member "x.npy") of the NumPy .npz archive at `path`, as
// numpy.savez (stored) or numpy.savez_compressed (deflated) writes it. InvalidArgument naming
// the file for a damaged archive, a ZIP64 one, an unknown compression method, or a missing
// member (with the list of the archive's arrays).
absl::StatusOr<NpyArray> ReadNpzArray(const std::string& path, const std::string& array);
// Element k as a double (exact for every dtype but 64-bit integers beyond 2^53).
double NpyElement(const NpyArray& a, size_t k);
// An array of `shape` and dtype descr ("<f4", "<i8", "|u1", ...) from raw little-endian
// bytes, format 1.0 (for tests and tools).
std::string NpyArrayBytes(const std::string& descr, const std::vector<size_t>& shape,
                          const std::string& raw);

// A 1-D float32 array of `v`, format 1.0.
std::string NpyVectorBytes(const std::vector<float>& v);
// A 2-D float32 (p, n) array from rows of equal length, format 1.0 (for tests and tools).
std::string NpyMatrixBytes(const std::vector<std::vector<float>>& rows);
absl::Status WriteNpyVector(const std::string& path, const std::vector<float>& v);

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_NPY_H_
