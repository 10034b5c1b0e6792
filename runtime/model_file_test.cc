// Tests of the saved-model format (runtime/model_file.h): SaveModel/LoadModel round trip of the
// weights, model description, round and layout; the byte layout the header comment
// documents; refusal (DataLoss) of corrupted, truncated and foreign files; NotFound for a
// missing file; and the temporary-file-and-rename write, which leaves no ".tmp" behind.
#include "runtime/model_file.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

namespace fs = std::filesystem;
using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::ListDir;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kDesc[] = "mlp:3-2";
constexpr size_t kPrefixBytes = 12;  // magic (8) + header length (4)

// A two-tensor layout (a 2x3 weight, a bias of 2) and weights that include values whose
// bits are easy to get wrong: negative zero, a subnormal, the largest float.
class ModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_.Add("fc0.weight", {2, 3});
    layout_.Add("fc0.bias", {2});
    weights_ = {1.0f, -2.5f, -0.0f, 1e-40f, 3.4028235e38f, 0.125f, 7.0f, -1e-3f};
    ASSERT_EQ(layout_.dim(), weights_.size());
    path_ = dir_.File("model.ftw");
  }

  absl::Status Save() { return SaveModel(path_, kDesc, layout_, /*round=*/42, weights_); }

  TempDir dir_;
  ParamLayout layout_;
  std::vector<float> weights_;
  std::string path_;
};

TEST_F(ModelFileTest, RoundTripsWeightsDescriptionAndRound) {
  ASSERT_THAT(Save(), IsOk());
  FT_ASSERT_OK_AND_ASSIGN(SavedModel m, LoadModel(path_));
  EXPECT_EQ(m.model, kDesc);
  EXPECT_EQ(m.round, 42u);
  // Bit-exact: the file stores the float32 values themselves (compare bits, not values, so
  // -0.0f and +0.0f differ).
  ASSERT_EQ(m.weights.size(), weights_.size());
  EXPECT_EQ(std::memcmp(m.weights.data(), weights_.data(), weights_.size() * sizeof(float)), 0);
  EXPECT_THAT(m.header_json, AllOf(StartsWith("{"), HasSubstr("\"dim\":8"),
                                   HasSubstr("\"fc0.weight\""), HasSubstr("\"fc0.bias\"")));
}

TEST_F(ModelFileTest, RoundTripsAnEmptyModel) {
  ParamLayout empty;
  ASSERT_THAT(SaveModel(path_, "softmax:0-0", empty, /*round=*/0, ConstVec()), IsOk());
  FT_ASSERT_OK_AND_ASSIGN(SavedModel m, LoadModel(path_));
  EXPECT_EQ(m.model, "softmax:0-0");
  EXPECT_EQ(m.round, 0u);
  EXPECT_TRUE(m.weights.empty());
}

TEST_F(ModelFileTest, FileHasTheDocumentedLayout) {
  ASSERT_THAT(Save(), IsOk());
  const std::string bytes = ReadFileBytes(path_);
  ASSERT_GE(bytes.size(), kPrefixBytes);
  EXPECT_EQ(bytes.substr(0, 8), "FTMODEL1");
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])); };
  const uint32_t header_len = b(8) | (b(9) << 8) | (b(10) << 16) | (b(11) << 24);  // LE
  ASSERT_EQ(bytes.size(), kPrefixBytes + header_len + 4 * weights_.size());
  EXPECT_THAT(bytes.substr(kPrefixBytes, header_len),
              AllOf(StartsWith("{\"format\":1,"), HasSubstr("\"model\":\"mlp:3-2\""),
                    HasSubstr("\"dtype\":\"float32\""), HasSubstr("\"round\":42")));
  // The first weight, 1.0f = 0x3f800000, as little-endian float32.
  EXPECT_EQ(bytes.substr(kPrefixBytes + header_len, 4), std::string("\x00\x00\x80\x3f", 4));
}

TEST_F(ModelFileTest, OverwritesAnExistingModel) {
  ASSERT_THAT(Save(), IsOk());
  weights_.assign(weights_.size(), 0.5f);
  ASSERT_THAT(SaveModel(path_, kDesc, layout_, /*round=*/43, weights_), IsOk());
  FT_ASSERT_OK_AND_ASSIGN(SavedModel m, LoadModel(path_));
  EXPECT_EQ(m.round, 43u);
  EXPECT_EQ(m.weights, weights_);
}

TEST_F(ModelFileTest, LeavesNoTemporaryFile) {
  ASSERT_THAT(Save(), IsOk());
  ASSERT_THAT(Save(), IsOk());  // replacing an existing file, too
  EXPECT_THAT(ListDir(dir_.path()), ElementsAre("model.ftw"));
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
}

TEST_F(ModelFileTest, UnwritableFolderFailsAndLeavesNothing) {
  const std::string bad = dir_.File("no_such_folder/model.ftw");
  EXPECT_THAT(SaveModel(bad, kDesc, layout_, 1, weights_),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(bad)));
  EXPECT_TRUE(ListDir(dir_.path()).empty());
}

TEST_F(ModelFileTest, CorruptedWeightFailsChecksum) {
  ASSERT_THAT(Save(), IsOk());
  std::string bytes = ReadFileBytes(path_);
  bytes[bytes.size() - 5] ^= 0x01;  // one bit of the second-to-last weight
  WriteFileBytes(path_, bytes);
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss,
                                         AllOf(HasSubstr(path_), HasSubstr("checksum"))));
}

TEST_F(ModelFileTest, TruncatedWeightsAreDataLoss) {
  ASSERT_THAT(Save(), IsOk());
  const std::string bytes = ReadFileBytes(path_);
  WriteFileBytes(path_, bytes.substr(0, bytes.size() - 4));  // the last weight is cut off
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(ModelFileTest, TruncatedHeaderIsDataLoss) {
  ASSERT_THAT(Save(), IsOk());
  WriteFileBytes(path_, ReadFileBytes(path_).substr(0, kPrefixBytes + 10));
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(ModelFileTest, FileShorterThanMagicIsDataLoss) {
  WriteFileBytes(path_, "FTMO");
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(ModelFileTest, EmptyFileIsDataLoss) {
  WriteFileBytes(path_, "");
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(ModelFileTest, BadMagicIsDataLoss) {
  ASSERT_THAT(Save(), IsOk());
  std::string bytes = ReadFileBytes(path_);
  bytes[7] = '2';  // "FTMODEL2": a format this reader does not know
  WriteFileBytes(path_, bytes);
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss,
                                         AllOf(HasSubstr(path_), HasSubstr("magic"))));
}

TEST_F(ModelFileTest, HeaderDimDisagreeingWithBodyIsDataLoss) {
  ASSERT_THAT(Save(), IsOk());
  std::string bytes = ReadFileBytes(path_);
  const size_t at = bytes.find("\"dim\":8");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 6] = '9';  // same header length, one float more than the file holds
  WriteFileBytes(path_, bytes);
  EXPECT_THAT(LoadModel(path_), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(ModelFileTest, MissingFileIsNotFound) {
  const std::string missing = dir_.File("absent.ftw");
  EXPECT_THAT(LoadModel(missing), StatusIs(absl::StatusCode::kNotFound, HasSubstr(missing)));
}

}  // namespace
}  // namespace fedtrain
