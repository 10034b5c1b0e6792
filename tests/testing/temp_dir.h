// A temporary directory removed (recursively) when the object goes out of scope.
#ifndef FEDTRAIN_TESTS_TESTING_TEMP_DIR_H_
#define FEDTRAIN_TESTS_TESTING_TEMP_DIR_H_

#include <filesystem>
#include <string>

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

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_TEMP_DIR_H_
