#include "tests/testing/temp_dir.h"

#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

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

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<int64_t> MetricsColumn(const std::string& path, const std::string& name) {
  std::vector<std::string> lines = absl::StrSplit(ReadFileBytes(path), '\n', absl::SkipEmpty());
  std::vector<int64_t> out;
  if (lines.empty()) {
    ADD_FAILURE() << path << " is empty or missing";
    return out;
  }
  std::vector<std::string> head = absl::StrSplit(lines[0], ',');
  const auto col = std::find(head.begin(), head.end(), name);
  if (col == head.end()) {
    ADD_FAILURE() << name << " not in " << lines[0];
    return out;
  }
  const size_t c = static_cast<size_t>(col - head.begin());
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ',');
    int64_t v = 0;
    EXPECT_TRUE(c < f.size() && absl::SimpleAtoi(f[c], &v)) << lines[i];
    out.push_back(v);
  }
  return out;
}

}  // namespace fedtrain::testing
