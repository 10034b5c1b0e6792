// Server checkpoints (server/checkpoint.h): a CoordinatorSnapshot survives SaveCheckpoint /
// LoadCheckpoint bit for bit (negative zeros, subnormals, infinities, NaN payloads included);
// the write is atomic (no temporary left, an older checkpoint replaced, a failed save leaves
// the older one readable); every damaged file (any prefix, any single flipped byte, bad magic,
// a checksummed body that does not parse or is inconsistent) is DataLoss naming the file;
// another algorithm or config is FailedPrecondition naming it; a missing file is NotFound.
#include "server/checkpoint.h"

#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/vec.h"
#include "fedtrain/v1/messages.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/bits.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::ListDir;
using ::fedtrain::testing::Bits;
using ::fedtrain::testing::DoubleFromBits;
using ::fedtrain::testing::FloatFromBits;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const CheckpointIdentity kId{"scaffold_m", "{\"rounds\":10,\"seed\":3}"};


// Every awkward float and double value: signed zeros, subnormals, extremes, infinities and
// NaNs with payloads (which a value-based copy could canonicalise).
CoordinatorSnapshot AwkwardSnapshot() {
  CoordinatorSnapshot s;
  s.state.round = 17;
  s.state.x = {0.0f,
               -0.0f,
               std::numeric_limits<float>::denorm_min(),
               -std::numeric_limits<float>::denorm_min(),
               FloatFromBits(0x007fffffu),  // largest subnormal
               FLT_MIN,
               FLT_MAX,
               -FLT_MAX,
               std::numeric_limits<float>::infinity(),
               -std::numeric_limits<float>::infinity(),
               FloatFromBits(0x7fc00001u),  // quiet NaN, payload 1
               FloatFromBits(0xffa00005u),  // negative signalling-pattern NaN
               1.0f / 3.0f};
  s.state.vectors["momentum"] = {-0.0f, FloatFromBits(1u), 2.5f};
  s.state.vectors["c"] = {1e-40f, -1e-42f, 7.0f};
  s.state.vectors["empty"] = {};
  s.algorithm_extra["tracker.0.h"] = {-0.0,
                                      std::numeric_limits<double>::denorm_min(),
                                      -std::numeric_limits<double>::denorm_min(),
                                      DoubleFromBits(0x000fffffffffffffull),
                                      DBL_MAX,
                                      -std::numeric_limits<double>::infinity(),
                                      DoubleFromBits(0x7ff8000000000123ull),
                                      0.1};
  s.algorithm_extra["tracker.0.initialised"] = {1.0, 0.0, 1.0};
  s.algorithm_extra["zero_length"] = {};
  s.accepted_through = {{0, 0},
                        {3, 5},
                        {uint64_t{1} << 40, 17},
                        {std::numeric_limits<uint64_t>::max() - 1, 12}};
  s.cum_bytes_up = std::numeric_limits<uint64_t>::max();
  s.cum_bytes_down = (uint64_t{1} << 40) + 3;
  s.wall_s = DoubleFromBits(0x40934a456d5cfaadull);  // about 1234.5678
  return s;
}

void ExpectSameBits(const CoordinatorSnapshot& got, const CoordinatorSnapshot& want) {
  EXPECT_EQ(got.state.round, want.state.round);
  EXPECT_EQ(Bits(got.state.x), Bits(want.state.x));
  ASSERT_EQ(got.state.vectors.size(), want.state.vectors.size());
  for (const auto& [k, v] : want.state.vectors) {
    auto it = got.state.vectors.find(k);
    ASSERT_NE(it, got.state.vectors.end()) << k;
    EXPECT_EQ(Bits(it->second), Bits(v)) << k;
  }
  ASSERT_EQ(got.algorithm_extra.size(), want.algorithm_extra.size());
  for (const auto& [k, v] : want.algorithm_extra) {
    auto it = got.algorithm_extra.find(k);
    ASSERT_NE(it, got.algorithm_extra.end()) << k;
    EXPECT_EQ(Bits(it->second), Bits(v)) << k;
  }
  EXPECT_EQ(got.accepted_through, want.accepted_through);
  EXPECT_EQ(got.cum_bytes_up, want.cum_bytes_up);
  EXPECT_EQ(got.cum_bytes_down, want.cum_bytes_down);
  EXPECT_EQ(Bits(got.wall_s), Bits(want.wall_s));
}

// The file layout of checkpoint.h around `body`: magic | u64 length | body | u64 FNV-1a of
// (length, body). Lets a test write a correctly checksummed file with any body.
std::string Frame(const std::string& body) {
  const uint64_t len = body.size();
  std::string out = "FTCKPT01";
  out.append(reinterpret_cast<const char*>(&len), sizeof(len));
  out += body;
  uint64_t sum = Fnv1a64(&len, sizeof(len));
  sum = Fnv1a64(body.data(), body.size(), sum);
  out.append(reinterpret_cast<const char*>(&sum), sizeof(sum));
  return out;
}

v1::Checkpoint ValidMessage() {
  v1::Checkpoint c;
  c.set_format_version(1);
  c.set_round(2);
  const std::vector<float> x = {1.0f, 2.0f};
  c.set_model(std::string(reinterpret_cast<const char*>(x.data()), 8));
  c.set_algorithm(kId.algorithm);
  c.set_config_fingerprint(kId.config_fingerprint);
  return c;
}

TEST(CheckpointTest, RoundTripPreservesEveryFieldBitForBit) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  const CoordinatorSnapshot want = AwkwardSnapshot();
  FT_ASSERT_OK(SaveCheckpoint(path, want, kId));
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot got, LoadCheckpoint(path, kId));
  ExpectSameBits(got, want);
  // The NaN payloads really are in the file's data (a guard against the comparison helper).
  EXPECT_EQ(Bits(got.state.x)[10], 0x7fc00001u);
  EXPECT_EQ(Bits(got.algorithm_extra.at("tracker.0.h"))[6], 0x7ff8000000000123ull);
  // Saving what was loaded gives the same file, byte for byte (maps are written in key order),
  // and loading it again changes nothing.
  const std::string path2 = dir.File("again.ftc");
  FT_ASSERT_OK(SaveCheckpoint(path2, got, kId));
  EXPECT_TRUE(ReadFileBytes(path2) == ReadFileBytes(path)) << "the same state gave other bytes";
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot again, LoadCheckpoint(path2, kId));
  ExpectSameBits(again, want);
}

TEST(CheckpointTest, EmptySnapshotRoundTrips) {
  TempDir dir;
  const std::string path = dir.File("c.ftc");
  const CoordinatorSnapshot want;  // round 0, no model, no maps, zero counters
  FT_ASSERT_OK(SaveCheckpoint(path, want, kId));
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot got, LoadCheckpoint(path, kId));
  ExpectSameBits(got, want);
}

TEST(CheckpointTest, SaveIsAtomicAndReplacesTheOlderCheckpoint) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  CoordinatorSnapshot a = AwkwardSnapshot();
  FT_ASSERT_OK(SaveCheckpoint(path, a, kId));
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("checkpoint.ftc"));  // no temporary left

  CoordinatorSnapshot b;
  b.state.round = 18;
  b.state.x = {4.0f, -5.0f};
  b.accepted_through = {{1, 18}};
  b.cum_bytes_up = 99;
  b.wall_s = 2.0;
  FT_ASSERT_OK(SaveCheckpoint(path, b, kId));
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("checkpoint.ftc"));
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot got, LoadCheckpoint(path, kId));
  ExpectSameBits(got, b);  // nothing of `a` is left (e.g. its vectors or extra state)
}

TEST(CheckpointTest, FailedSaveLeavesTheOlderCheckpointReadable) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  const CoordinatorSnapshot a = AwkwardSnapshot();
  FT_ASSERT_OK(SaveCheckpoint(path, a, kId));
  const std::string before = ReadFileBytes(path);
  // The temporary file's name is taken by a folder: the save cannot even start writing.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ASSERT_TRUE(std::filesystem::create_directory(tmp));
  CoordinatorSnapshot b;
  b.state.x = {1.0f};
  EXPECT_FALSE(SaveCheckpoint(path, b, kId).ok());
  EXPECT_EQ(ReadFileBytes(path), before);
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot got, LoadCheckpoint(path, kId));
  ExpectSameBits(got, a);
}

TEST(CheckpointTest, SaveIntoAMissingFolderFails) {
  TempDir dir;
  const std::string path = dir.File("no/such/folder/checkpoint.ftc");
  EXPECT_FALSE(SaveCheckpoint(path, AwkwardSnapshot(), kId).ok());
  EXPECT_TRUE(ListDir(dir.path()).empty());
}

TEST(CheckpointTest, MissingFileIsNotFound) {
  TempDir dir;
  const std::string path = dir.File("never_written.ftc");
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(CheckpointTest, EveryTruncationIsDataLossNamingTheFile) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  FT_ASSERT_OK(SaveCheckpoint(path, AwkwardSnapshot(), kId));
  const std::string good = ReadFileBytes(path);
  ASSERT_GT(good.size(), 24u);
  for (size_t n = 0; n < good.size(); ++n) {
    WriteFileBytes(path, good.substr(0, n));
    EXPECT_THAT(LoadCheckpoint(path, kId),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)))
        << "truncated to " << n << " of " << good.size() << " bytes";
  }
  // One byte too many is damage as well.
  WriteFileBytes(path, good + "x");
  EXPECT_THAT(LoadCheckpoint(path, kId), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)));
}

// Every single-byte change is caught: in the magic (bad magic), the length field (it no
// longer matches the file size), the body or the trailer (FNV-1a 64 changes with any one byte:
// each step h = (h ^ b) * prime is a bijection of h). Every position, two bit patterns.
TEST(CheckpointTest, EveryFlippedByteIsDataLossNamingTheFile) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  FT_ASSERT_OK(SaveCheckpoint(path, AwkwardSnapshot(), kId));
  const std::string good = ReadFileBytes(path);
  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string bad = good;
      bad[pos] = static_cast<char>(static_cast<unsigned char>(bad[pos]) ^ mask);
      WriteFileBytes(path, bad);
      const char* where = pos < 8 ? "magic" : pos < 16 ? "length" : pos + 8 < good.size()
                                                                        ? "body"
                                                                        : "trailer";
      EXPECT_THAT(LoadCheckpoint(path, kId),
                  StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path)))
          << "byte " << pos << " (" << where << ") ^ " << static_cast<int>(mask);
    }
  }
}

TEST(CheckpointTest, WrongMagicIsDataLoss) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  FT_ASSERT_OK(SaveCheckpoint(path, AwkwardSnapshot(), kId));
  std::string bytes = ReadFileBytes(path);
  ASSERT_EQ(bytes.substr(0, 8), "FTCKPT01");
  bytes.replace(0, 8, "FTCKPT02");
  WriteFileBytes(path, bytes);
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(path), HasSubstr("magic"))));
  // Not a checkpoint at all (e.g. the config file given by mistake).
  WriteFileBytes(path, "{\"name\": \"mnist\", \"rounds\": 10, \"seed\": 1}\n");
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(path), HasSubstr("magic"))));
}

TEST(CheckpointTest, ChecksummedButInvalidBodiesAreDataLoss) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  // The framing helper is right: a valid message in it loads.
  WriteFileBytes(path, Frame(ValidMessage().SerializeAsString()));
  FT_ASSERT_OK_AND_ASSIGN(CoordinatorSnapshot s, LoadCheckpoint(path, kId));
  EXPECT_EQ(s.state.x, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(s.state.round, 2u);

  // A body that is not a Checkpoint message (a truncated varint).
  WriteFileBytes(path, Frame(std::string("\x08\xff", 2)));
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(path), HasSubstr("parse"))));

  // accepted_ids and accepted_through of different lengths.
  v1::Checkpoint c = ValidMessage();
  c.add_accepted_ids(1);
  c.add_accepted_ids(2);
  c.add_accepted_through(1);
  WriteFileBytes(path, Frame(c.SerializeAsString()));
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(path),
                                                          HasSubstr("accepted"))));

  // A model of 7 bytes: not a whole number of floats.
  c = ValidMessage();
  c.set_model(std::string(7, '\0'));
  WriteFileBytes(path, Frame(c.SerializeAsString()));
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model: 7 bytes")));

  // An extra-state entry of 12 bytes: not a whole number of doubles.
  c = ValidMessage();
  (*c.mutable_algorithm_extra())["tracker.0.h"] = std::string(12, '\0');
  WriteFileBytes(path, Frame(c.SerializeAsString()));
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("tracker.0.h: 12 bytes")));
}

TEST(CheckpointTest, AnotherFormatVersionIsFailedPrecondition) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  v1::Checkpoint c = ValidMessage();
  c.set_format_version(2);
  WriteFileBytes(path, Frame(c.SerializeAsString()));
  EXPECT_THAT(LoadCheckpoint(path, kId),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(path), HasSubstr("format version 2"))));
}

TEST(CheckpointTest, AnotherAlgorithmIsFailedPreconditionNamingBoth) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  FT_ASSERT_OK(SaveCheckpoint(path, AwkwardSnapshot(), kId));
  const CheckpointIdentity other{"fedavg", kId.config_fingerprint};
  EXPECT_THAT(LoadCheckpoint(path, other),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(path), HasSubstr("scaffold_m"), HasSubstr("fedavg"))));
}

TEST(CheckpointTest, AnotherConfigIsFailedPreconditionNamingTheConfig) {
  TempDir dir;
  const std::string path = dir.File("checkpoint.ftc");
  FT_ASSERT_OK(SaveCheckpoint(path, AwkwardSnapshot(), kId));
  const CheckpointIdentity other{kId.algorithm, "{\"rounds\":10,\"seed\":4}"};
  EXPECT_THAT(LoadCheckpoint(path, other),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(path), HasSubstr("another config"))));
  // The identity is checked exactly: a fingerprint that is a prefix is another config.
  const CheckpointIdentity prefix{kId.algorithm, "{\"rounds\":10"};
  EXPECT_THAT(LoadCheckpoint(path, prefix),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another config")));
  // And the right identity still loads the file (the refusals did not change it).
  FT_EXPECT_OK(LoadCheckpoint(path, kId));
}

}  // namespace
}  // namespace fedtrain
