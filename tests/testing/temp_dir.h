// Temporary directories (removed recursively when the object goes out of scope) and small
// file helpers for tests.
#ifndef FEDTRAIN_TESTS_TESTING_TEMP_DIR_H_
#define FEDTRAIN_TESTS_TESTING_TEMP_DIR_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fedtrain::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole file as bytes; "" when it cannot be read.
std::string ReadFileBytes(const std::string& path);
// Creates or replaces a file; records a test failure naming it when that fails.
void WriteFileBytes(const std::string& path, const std::string& bytes);
// Column `name` of the metrics.csv at `path`, one value per row; records a test failure
// when the column is missing or a value is not an integer.
std::vector<int64_t> MetricsColumn(const std::string& path, const std::string& name);
// Entry names of `dir`, sorted; empty when `dir` does not exist.
std::vector<std::string> ListDir(const std::string& dir);

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_TEMP_DIR_H_
