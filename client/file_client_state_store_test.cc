// Tests of the file-backed client state store: round trips of `vectors` and `wide`, state that
// survives reopening (a worker restart), nothing stored for empty states, refusal of a folder
// made for another model size / algorithm / state version, damaged records and headers
// refused naming the client, one store per folder, crash leftovers, concurrent clients.
#include "client/file_client_state_store.h"

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::AllOf;
using ::testing::HasSubstr;

FileStateStoreOptions Opts(const std::string& dir, uint64_t dim = 8,
                           const std::string& algo = "scaffold", int version = 1) {
  FileStateStoreOptions o;
  o.dir = dir;
  o.dim = dim;
  o.algorithm = algo;
  o.state_version = version;
  o.sync = false;  // tests need no power-loss durability; rename is still atomic
  return o;
}

ClientState SampleState(float seed) {
  ClientState s;
  s.vectors["c"] = {seed, -1.5f, 0.0f, 3.25f, seed * 2, 1e-30f, -0.0f, 7.0f};
  s.vectors["momentum"] = {};  // an empty vector is a value too
  s.wide["ef.e.0"] = {1.0 / 3.0, -2.0, static_cast<double>(seed)};
  return s;
}

void ExpectSameState(const ClientState& a, const ClientState& b) {
  EXPECT_EQ(a.vectors, b.vectors);
  EXPECT_EQ(a.wide, b.wide);
}

TEST(FileClientStateStoreTest, UnknownClientIsEmptyAndStatesRoundTrip) {
  TempDir tmp;
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(tmp.File("s"))));
  ClientState out = SampleState(9);
  FT_ASSERT_OK(store->Load(42, &out));
  EXPECT_TRUE(out.vectors.empty());
  EXPECT_TRUE(out.wide.empty());

  FT_ASSERT_OK(store->Save(42, SampleState(1)));
  FT_ASSERT_OK(store->Save(4242, SampleState(2)));  // same shard (low byte), other client
  FT_ASSERT_OK(store->Load(42, &out));
  ExpectSameState(out, SampleState(1));
  FT_ASSERT_OK(store->Load(4242, &out));
  ExpectSameState(out, SampleState(2));
  FT_ASSERT_OK(store->Save(42, SampleState(3)));  // overwrite
  FT_ASSERT_OK(store->Load(42, &out));
  ExpectSameState(out, SampleState(3));
  // Ids beyond 32 bits are fine.
  FT_ASSERT_OK(store->Save(uint64_t{1} << 40, SampleState(4)));
  FT_ASSERT_OK(store->Load(uint64_t{1} << 40, &out));
  ExpectSameState(out, SampleState(4));
  EXPECT_EQ(store->stats().saves, 4u);
  EXPECT_EQ(store->stats().loads, 4u);
  EXPECT_GT(store->stats().bytes_written, 4 * (8 * 4 + 3 * 8));
}

TEST(FileClientStateStoreTest, StateSurvivesReopeningTheFolder) {
  TempDir tmp;
  FileStateStoreOptions o = Opts(tmp.File("s"));
  o.sync = true;  // the durable path too
  {
    FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(o));
    FT_ASSERT_OK(store->Save(7, SampleState(5)));
  }
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(o));
  ClientState out;
  FT_ASSERT_OK(store->Load(7, &out));
  ExpectSameState(out, SampleState(5));
  FT_ASSERT_OK_AND_ASSIGN(bool any, store->HasRecords());
  EXPECT_TRUE(any);
}

TEST(FileClientStateStoreTest, EmptyStatesStoreNothing) {
  TempDir tmp;
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(tmp.File("s"))));
  for (ClientId id = 0; id < 1000; ++id) FT_ASSERT_OK(store->Save(id, ClientState{}));
  FT_ASSERT_OK_AND_ASSIGN(bool any, store->HasRecords());
  EXPECT_FALSE(any);
  FT_ASSERT_OK(store->Save(3, SampleState(1)));
  EXPECT_TRUE(std::filesystem::exists(store->RecordPath(3)));
  FT_ASSERT_OK(store->Save(3, ClientState{}));  // the client became stateless again
  EXPECT_FALSE(std::filesystem::exists(store->RecordPath(3)));
  ClientState out = SampleState(1);
  FT_ASSERT_OK(store->Load(3, &out));
  EXPECT_TRUE(out.vectors.empty());
  FT_ASSERT_OK_AND_ASSIGN(any, store->HasRecords());
  EXPECT_FALSE(any);
}

TEST(FileClientStateStoreTest, RefusesAFolderMadeForAnotherModelOrAlgorithm) {
  TempDir tmp;
  const std::string dir = tmp.File("s");
  { FT_ASSERT_OK(FileClientStateStore::Open(Opts(dir, 10, "scaffold", 1)).status()); }
  EXPECT_THAT(FileClientStateStore::Open(Opts(dir, 11, "scaffold", 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(dir), HasSubstr("d = 10"), HasSubstr("d = 11"))));
  EXPECT_THAT(FileClientStateStore::Open(Opts(dir, 10, "feddyn", 1)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("\"scaffold\""), HasSubstr("\"feddyn\""))));
  EXPECT_THAT(FileClientStateStore::Open(Opts(dir, 10, "scaffold", 2)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("state version 1"), HasSubstr("state version 2"))));
  // The matching identity still opens.
  FT_ASSERT_OK(FileClientStateStore::Open(Opts(dir, 10, "scaffold", 1)).status());
}

TEST(FileClientStateStoreTest, DamagedRecordsAreRefusedNamingTheClient) {
  TempDir tmp;
  const std::string dir = tmp.File("s");
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(dir)));
  FT_ASSERT_OK(store->Save(17, SampleState(1)));
  const std::string path = store->RecordPath(17);
  const std::string good = ReadFileBytes(path);
  ASSERT_GT(good.size(), 100u);

  // One flipped bit anywhere: in the header, in a float, in the checksum itself.
  for (size_t at : {size_t{9}, good.size() / 2, good.size() - 1}) {
    std::string bad = good;
    bad[at] ^= 0x10;
    WriteFileBytes(path, bad);
    ClientState out = SampleState(8);
    EXPECT_THAT(store->Load(17, &out),
                StatusIs(absl::StatusCode::kDataLoss,
                         AllOf(HasSubstr("client 17"), HasSubstr(path))))
        << "flipped byte " << at;
    ExpectSameState(out, SampleState(8));  // the output is untouched
  }
  // Truncated (a torn write that somehow got renamed), and empty.
  WriteFileBytes(path, good.substr(0, good.size() - 13));
  ClientState out;
  EXPECT_THAT(store->Load(17, &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("client 17")));
  WriteFileBytes(path, "");
  EXPECT_THAT(store->Load(17, &out),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("client 17")));
  // Another client's intact record under this client's name.
  FT_ASSERT_OK(store->Save(18, SampleState(2)));
  WriteFileBytes(path, ReadFileBytes(store->RecordPath(18)));
  EXPECT_THAT(store->Load(17, &out),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("client 17"), HasSubstr("holds client 18"))));
  // Saving again repairs the client.
  FT_ASSERT_OK(store->Save(17, SampleState(3)));
  FT_ASSERT_OK(store->Load(17, &out));
  ExpectSameState(out, SampleState(3));
}

TEST(FileClientStateStoreTest, RecordFromAnotherStoreIsRefused) {
  TempDir tmp;
  FT_ASSERT_OK_AND_ASSIGN(auto other,
                          FileClientStateStore::Open(Opts(tmp.File("a"), 8, "feddyn", 1)));
  FT_ASSERT_OK(other->Save(5, SampleState(1)));
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(tmp.File("b"))));
  std::filesystem::create_directories(
      std::filesystem::path(store->RecordPath(5)).parent_path());  // made on first use
  WriteFileBytes(store->RecordPath(5), ReadFileBytes(other->RecordPath(5)));
  ClientState out;
  EXPECT_THAT(store->Load(5, &out),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("client 5"), HasSubstr("\"feddyn\""),
                             HasSubstr("\"scaffold\""))));
}

TEST(FileClientStateStoreTest, DamagedHeaderIsDataLoss) {
  TempDir tmp;
  const std::string dir = tmp.File("s");
  { FT_ASSERT_OK(FileClientStateStore::Open(Opts(dir)).status()); }
  std::string header = ReadFileBytes(dir + "/STORE");
  ASSERT_FALSE(header.empty());
  header[12] ^= 1;
  WriteFileBytes(dir + "/STORE", header);
  EXPECT_THAT(FileClientStateStore::Open(Opts(dir)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir + "/STORE")));
}

TEST(FileClientStateStoreTest, OneStorePerFolder) {
  TempDir tmp;
  const std::string dir = tmp.File("s");
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(dir)));
  EXPECT_THAT(FileClientStateStore::Open(Opts(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already open")));
  store.reset();
  FT_ASSERT_OK(FileClientStateStore::Open(Opts(dir)).status());
}

TEST(FileClientStateStoreTest, CrashLeftoversAreIgnoredThenRemoved) {
  TempDir tmp;
  const std::string dir = tmp.File("s");
  std::string leftover;
  {
    FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(dir)));
    FT_ASSERT_OK(store->Save(5, SampleState(1)));
    // A crash between creating the temporary and renaming it.
    leftover = store->RecordPath(5) + ".tmp.999.0";
    WriteFileBytes(leftover, "half a record");
    ClientState out;
    FT_ASSERT_OK(store->Load(5, &out));
    ExpectSameState(out, SampleState(1));
  }
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(dir)));
  EXPECT_FALSE(std::filesystem::exists(leftover));
  ClientState out;
  FT_ASSERT_OK(store->Load(5, &out));
  ExpectSameState(out, SampleState(1));
}

TEST(FileClientStateStoreTest, RefusesBadOptions) {
  TempDir tmp;
  EXPECT_THAT(FileClientStateStore::Open(Opts("")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("folder")));
  EXPECT_THAT(FileClientStateStore::Open(Opts(tmp.File("s"), 8, "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("algorithm")));
}

TEST(FileClientStateStoreTest, DifferentClientsConcurrently) {
  TempDir tmp;
  FT_ASSERT_OK_AND_ASSIGN(auto store, FileClientStateStore::Open(Opts(tmp.File("s"))));
  constexpr int kThreads = 4, kClients = 64, kRounds = 3;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        for (int c = t; c < kClients; c += kThreads) {
          ClientState s;
          if (!store->Load(c, &s).ok()) ++failures[t];
          const float expect = static_cast<float>(r * 1000 + c - 1000);
          if (r > 0 && (s.vectors.count("c") == 0 || s.vectors["c"][0] != expect)) ++failures[t];
          if (!store->Save(c, SampleState(static_cast<float>(r * 1000 + c))).ok()) ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  for (int c = 0; c < kClients; ++c) {
    ClientState out;
    FT_ASSERT_OK(store->Load(c, &out));
    ExpectSameState(out, SampleState(static_cast<float>((kRounds - 1) * 1000 + c)));
  }
}

}  // namespace
}  // namespace fedtrain
