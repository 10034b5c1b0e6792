// The data attacks on a faulty client's view: label_flip maps y to C - 1 - y; augmented warps
// each image by one of the ten Lotka-Volterra maps (all of them with rho = 1, none of the
// labels), the same images on every call; honest clients and other attacks see the data as
// it is.
#include "runtime/attack_data.h"

#include <vector>

#include "attacks/augment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/config_io.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

ExperimentData Images(size_t n) {
  ExperimentData d;
  d.train.num_features = 784;
  d.train.num_classes = 10;
  d.train.features.resize(n * 784);
  for (size_t i = 0; i < d.train.features.size(); ++i)
    d.train.features[i] = static_cast<float>((i * 37) % 101) / 100.0f;
  for (size_t i = 0; i < n; ++i) d.train.labels.push_back(static_cast<int32_t>(i % 10));
  d.partition.clients.resize(2);
  for (uint32_t i = 0; i < n; ++i) d.partition.clients[i % 2].push_back(i);
  return d;
}

v1::ExperimentConfig Config(const std::vector<std::string>& sets) {
  v1::ExperimentConfig c;
  for (const std::string& s : sets) EXPECT_TRUE(ApplyOverride(s, &c).ok()) << s;
  return c;
}

AttackOptions Attack(const std::vector<std::string>& sets) { return AttackFromConfig(Config(sets)); }

std::vector<float> Row(const DataView& v, size_t i) {
  const ConstVec r = v.data->row(v.index(i));
  return std::vector<float>(r.begin(), r.end());
}

TEST(AttackDataTest, LabelFlipFlipsOnlyTheFaultyClientsLabels) {
  const ExperimentData d = Images(8);
  ClientDataFn fn = WithDataAttack(ClientDataOf(d), Attack({"attack.name=label_flip",
                                                            "attack.clients=1"}), d);
  FT_ASSERT_OK_AND_ASSIGN(DataView bad, fn(1));
  ASSERT_EQ(bad.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const uint32_t row = d.partition.clients[1][i];
    EXPECT_EQ(bad.data->labels[bad.index(i)], 9 - d.train.labels[row]);
    EXPECT_EQ(Row(bad, i), std::vector<float>(d.train.row(row).begin(), d.train.row(row).end()));
  }
  FT_ASSERT_OK_AND_ASSIGN(DataView good, fn(0));
  EXPECT_EQ(good.data, &d.train);  // the honest client's view is the data set itself
}

TEST(AttackDataTest, AugmentedWarpsEveryImageWithOneOfTheTenMapsReproducibly) {
  const ExperimentData d = Images(12);
  const v1::ExperimentConfig c = Config({"attack.name=augmented", "attack.clients=0"});
  std::vector<std::vector<int32_t>> maps;
  for (int k = 0; k < kNumWarps; ++k) maps.push_back(LotkaVolterraMap(28, 28, WarpTime(k)));
  ClientDataFn fn = WithDataAttack(ClientDataOf(d), AttackFromConfig(c), d);
  FT_ASSERT_OK_AND_ASSIGN(DataView v, fn(0));
  std::vector<std::vector<float>> first;
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t row = d.partition.clients[0][i];
    EXPECT_EQ(v.data->labels[v.index(i)], d.train.labels[row]);
    std::vector<float> got = Row(v, i);
    bool matched = false;
    for (const auto& m : maps) {
      std::vector<float> want(784);
      ApplyWarp(m, 0.0f, d.train.features.data() + size_t{row} * 784, want.data());
      matched |= want == got;
    }
    EXPECT_TRUE(matched) << "image " << i << " is not one of the ten warps of its source";
    first.push_back(std::move(got));
  }
  ClientDataFn fn2 = WithDataAttack(ClientDataOf(d), AttackFromConfig(c), d);  // owns the view's buffer
  FT_ASSERT_OK_AND_ASSIGN(DataView again, fn2(0));
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(Row(again, i), first[i]);
  // rho = 0.5 keeps some images as they are; the draws of the others do not move.
  ClientDataFn half = WithDataAttack(
      ClientDataOf(d), Attack({"attack.name=augmented", "attack.clients=0", "attack.rho=0.5"}), d);
  FT_ASSERT_OK_AND_ASSIGN(DataView h, half(0));
  int kept = 0, warped_same = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    const uint32_t row = d.partition.clients[0][i];
    const std::vector<float> got = Row(h, i);
    if (got == std::vector<float>(d.train.row(row).begin(), d.train.row(row).end())) ++kept;
    else warped_same += got == first[i];
  }
  EXPECT_GT(kept, 0);
  EXPECT_EQ(kept + warped_same, static_cast<int>(h.size()));
}

TEST(AttackDataTest, OtherAttacksLeaveTheDataAlone) {
  const ExperimentData d = Images(4);
  ClientDataFn fn = WithDataAttack(ClientDataOf(d), Attack({"attack.name=alie",
                                                            "attack.clients=0"}), d);
  FT_ASSERT_OK_AND_ASSIGN(DataView v, fn(0));
  EXPECT_EQ(v.data, &d.train);
  EXPECT_THAT(CheckDataAttack(Config({"attack.name=augmented", "data.dataset=synthetic"})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.dataset")));
}

}  // namespace
}  // namespace fedtrain
