#include "tests/testing/temp_dir.h"

#include <stdlib.h>

#include <system_error>

namespace fedtrain::testing {

TempDir::TempDir() {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/fedtrain_test_XXXXXX";
  char* p = mkdtemp(tmpl.data());
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

}  // namespace fedtrain::testing
