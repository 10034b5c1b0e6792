#include "proto/config_io.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<v1::ExperimentConfig> Json(const std::string& s) {
  return ParseConfig(s, "json", "test.json");
}

TEST(ConfigTest, JsonAndTextGiveTheSameConfig) {
  FT_ASSERT_OK_AND_ASSIGN(auto a, Json(R"({"rounds": 7, "local": {"lr": 0.1},
                                           "model": {"hidden": [64, 32]}})"));
  FT_ASSERT_OK_AND_ASSIGN(auto b, ParseConfig("rounds: 7 local { lr: 0.1 } model { hidden: 64 hidden: 32 }",
                                              "text", "t.textproto"));
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_EQ(a.rounds(), 7);
  EXPECT_EQ(a.model().hidden_size(), 2);
}

TEST(ConfigTest, UnknownFieldIsAnErrorNamingIt) {
  EXPECT_THAT(Json(R"({"roundz": 3})"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("roundz")));
  EXPECT_THAT(ParseConfig("local { lrr: 1 }", "text", "x.txt"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lrr")));
}

TEST(ConfigTest, UnknownFieldInAFileIsAsClearAsInSet) {
  // The same typo from a file and from --set: both name the field's path and list the
  // fields its section has; the file's error also gives the line and column of the key.
  const std::string file_error = std::string(
      Json("{\n  \"rounds\": 3,\n  \"local\": {\"lr\": 0.1,\n    \"learning_rate\": 0.1}\n}")
          .status()
          .message());
  v1::ExperimentConfig c;
  const std::string set_error = std::string(ApplyOverride("local.learning_rate=0.1", &c).message());
  EXPECT_EQ(file_error,
            "test.json: line 4, column 5: unknown config field 'local.learning_rate' (local has: " +
                set_error.substr(set_error.find("has: ") + 5));
  EXPECT_THAT(set_error, HasSubstr("lr, lr_decay"));
  // Top level.
  EXPECT_THAT(Json(R"({"roundz": 3})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1, column 2: unknown config field 'roundz' (top level has: "
                                 "name, seed")));
  // Plug-in parameters are free-form: any key is accepted there (the algorithm checks them).
  FT_EXPECT_OK(Json(R"({"algorithm": {"name": "fedprox", "params": {"anything": {"x": 1}}}})"));
  // protobuf's JSON names (lowerCamel) are accepted as protobuf accepts them.
  FT_EXPECT_OK(Json(R"({"federation": {"numClients": 5}})"));
  // Text format: the parser's line and column, plus the fields the section has.
  EXPECT_THAT(ParseConfig("rounds: 3\nlocal {\n  learning_rate: 1\n}", "text", "x.txt"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("x.txt: invalid config: line 3:"),
                             HasSubstr("learning_rate"), HasSubstr("has: lr, lr_decay"))));
}

TEST(ConfigTest, JsonSyntaxErrorsGiveLineAndColumn) {
  struct Case {
    std::string json, message;
  } cases[] = {
      {"{\n  \"rounds\": 3,\n}", "line 3, column 1: expected a field name in quotes, found '}' (a ',' before '}'?)"},
      {"{\n  \"rounds\": 3\n  \"seed\": 1\n}", "line 3, column 3: expected ',' or '}' after the value of 'rounds', found '\"'"},
      {"{\"name\": fmnist}", "line 1, column 10: 'fmnist' is not a JSON value (strings need quotes)"},
      {"{\"rounds\" 3}", "line 1, column 11: expected ':' after \"rounds\", found '3'"},
      {"{\"model\": {\"hidden\": [200, 100}}", "line 1, column 31: expected ',' or ']' in a list, found '}'"},
      {"{\"rounds\": ", "line 1, column 12: expected a value, found the end of the file"},
      {"{\"name\": \"a\nb\"}", "line 1, column 12: control character in a string"},
      {"{\"rounds\": 3} x", "line 1, column 15: unexpected text after the config's closing '}'"},
  };
  for (const Case& k : cases)
    EXPECT_THAT(Json(k.json), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("test.json: " + k.message)))
        << k.json;
  // Value errors still come from protobuf's parser, which names the field.
  EXPECT_THAT(Json(R"({"rounds": "ten"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rounds")));
}

TEST(ConfigTest, RecordJsonReadsBackAsTheSameConfig) {
  v1::ExperimentConfig c;
  FillDefaults(&c);
  c.set_rounds(1500);
  c.mutable_local()->set_lr(0.05);
  c.mutable_local()->set_lr_decay(0.1 + 0.2);  // 0.30000000000000004: kept exactly
  c.mutable_model()->add_hidden(200);
  c.mutable_algorithm()->set_name("fedprox");
  FT_ASSERT_OK(ApplyOverride("algorithm.params.mu=0.5", &c));
  c.mutable_data()->set_dataset("fashion_mnist");
  const std::string json = ConfigToRecordJson(c);
  EXPECT_THAT(json, HasSubstr("\"rounds\": 1500,"));  // a number, not "1500"
  EXPECT_THAT(json, HasSubstr("\"lr\": 0.05,"));       // not 0.050000000000000003
  EXPECT_THAT(json, HasSubstr("\"lr_decay\": 0.30000000000000004"));
  EXPECT_THAT(json, HasSubstr("\"hidden\": [200]"));
  EXPECT_THAT(json, HasSubstr("\"mu\":0.5"));
  // Sections that do not apply: no attack, no privacy mechanism, no synthetic data set, no
  // standardisation statistics.
  EXPECT_THAT(json, Not(HasSubstr("\"attack\"")));
  EXPECT_THAT(json, Not(HasSubstr("\"privacy\"")));
  EXPECT_THAT(json, Not(HasSubstr("\"synthetic\"")));
  EXPECT_THAT(json, Not(HasSubstr("\"std\":")));
  FT_ASSERT_OK_AND_ASSIGN(v1::ExperimentConfig back, Json(json));
  FillDefaults(&back);
  EXPECT_EQ(back.SerializeAsString(), c.SerializeAsString());
  // When they apply, they are there.
  c.mutable_attack()->set_name("alie");
  c.mutable_data()->set_dataset("synthetic");
  const std::string with = ConfigToRecordJson(c);
  EXPECT_THAT(with, HasSubstr("\"attack\": {"));
  EXPECT_THAT(with, HasSubstr("\"synthetic\": {"));
}

TEST(ConfigTest, OverridesWalkDottedPaths) {
  v1::ExperimentConfig c;
  FT_ASSERT_OK(ApplyOverride("local.lr=0.25", &c));
  FT_ASSERT_OK(ApplyOverride("federation.num_clients=7", &c));
  FT_ASSERT_OK(ApplyOverride("model.hidden=10,20", &c));
  FT_ASSERT_OK(ApplyOverride("algorithm.name=fedavgm", &c));
  FT_ASSERT_OK(ApplyOverride("data.synthetic.iid=true", &c));
  FT_ASSERT_OK(ApplyOverride("algorithm.params.mu=0.5", &c));
  FT_ASSERT_OK(ApplyOverride("algorithm.params.mode=paper", &c));
  EXPECT_EQ(c.local().lr(), 0.25);
  EXPECT_EQ(c.federation().num_clients(), 7);
  EXPECT_THAT(c.model().hidden(), ::testing::ElementsAre(10, 20));
  EXPECT_EQ(c.algorithm().name(), "fedavgm");
  EXPECT_TRUE(c.data().synthetic().iid());
  EXPECT_EQ(c.algorithm().params().fields().at("mu").number_value(), 0.5);
  EXPECT_EQ(c.algorithm().params().fields().at("mode").string_value(), "paper");
}

TEST(ConfigTest, BadOverrides) {
  v1::ExperimentConfig c;
  EXPECT_THAT(ApplyOverride("local.lrr=1", &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lrr")));
  EXPECT_THAT(ApplyOverride("local.lr=fast", &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected a number")));
  EXPECT_THAT(ApplyOverride("local=1", &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is a message")));
  EXPECT_THAT(ApplyOverride("rounds", &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("path=value")));
  EXPECT_THAT(ApplyOverride("rounds.x=1", &c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no sub-fields")));
}

TEST(ConfigTest, FillDefaultsMakesEveryValueVisible) {
  v1::ExperimentConfig c;
  FillDefaults(&c);
  EXPECT_TRUE(c.has_rounds());
  EXPECT_TRUE(c.local().has_lr());
  EXPECT_TRUE(c.data().synthetic().has_alpha());
  const std::string json = ConfigToJson(c);
  EXPECT_THAT(json, HasSubstr("\"clients_per_round\": \"10\""));
  // The saved JSON reads back to the same config.
  FT_ASSERT_OK_AND_ASSIGN(auto back, Json(json));
  EXPECT_EQ(back.SerializeAsString(), c.SerializeAsString());
}

TEST(ConfigTest, ValidationNamesTheField) {
  v1::ExperimentConfig c;
  FillDefaults(&c);
  FT_EXPECT_OK(ValidateConfig(c));
  auto with = [&](const std::string& o) {
    v1::ExperimentConfig d = c;
    EXPECT_THAT(ApplyOverride(o, &d), IsOk());
    return ValidateConfig(d);
  };
  EXPECT_THAT(with("federation.num_clients=0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("federation.num_clients must be > 0, got 0")));
  EXPECT_THAT(with("federation.num_clients=-5"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got -5")));
  EXPECT_THAT(with("federation.clients_per_round=101"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must not exceed federation.num_clients")));
  EXPECT_THAT(with("local.lr=0"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr")));
  EXPECT_THAT(with("data.dataset=cifar"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.dataset")));
  EXPECT_THAT(with("partition.method=natural"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("partition.method")));
  EXPECT_THAT(with("compression.compressor=zip"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.compressor")));
  EXPECT_THAT(with("compression.feedback=ef15"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.feedback")));
  EXPECT_THAT(with("compression.index_encoding=gzip"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.index_encoding")));
  EXPECT_THAT(with("compression.value_type=f16"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.value_type")));
  // EControl needs an explicit eta in [0, 1).
  EXPECT_THAT(with("compression.feedback=econtrol"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("compression.eta")));
  v1::ExperimentConfig e = c;
  ASSERT_THAT(ApplyOverride("compression.feedback=econtrol", &e), IsOk());
  ASSERT_THAT(ApplyOverride("compression.eta=1", &e), IsOk());
  EXPECT_THAT(ValidateConfig(e), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got 1")));
  ASSERT_THAT(ApplyOverride("compression.eta=0.005", &e), IsOk());
  // The weighting rule of tracker methods depends on the algorithm: ResolveConfig checks it
  // (aggregators/tracker_server_test.cc, CheckFeedback).
  FT_EXPECT_OK(ValidateConfig(e));
}

// Values that used to pass validation and then abort the process or make every update
// non-finite (the run exited 0 at chance accuracy) are refused at load, naming the field.
TEST(ConfigTest, BoundsThatUsedToAbortOrDivergeAreRefusedAtLoad) {
  v1::ExperimentConfig c;
  FillDefaults(&c);
  auto with = [&](const std::vector<std::string>& sets) {
    v1::ExperimentConfig d = c;
    for (const std::string& o : sets) EXPECT_THAT(ApplyOverride(o, &d), IsOk());
    return ValidateConfig(d);
  };
  EXPECT_THAT(with({"threads=100000"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threads must be at most 1024")));
  FT_EXPECT_OK(with({"threads=1024"}));
  EXPECT_THAT(with({"local.momentum=5"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.momentum")));
  EXPECT_THAT(with({"local.momentum=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[0, 1)")));
  FT_EXPECT_OK(with({"local.momentum=0.99"}));
  EXPECT_THAT(with({"local.lr=1e308"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr must be at most")));
  EXPECT_THAT(with({"local.lr=nan"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr")));
  EXPECT_THAT(with({"local.lr=inf"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr")));
  EXPECT_THAT(with({"local.lr_decay=1e300"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr_decay")));
  EXPECT_THAT(with({"local.lr_decay=0"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("local.lr_decay")));
  // A decay above 1 is fine while the last round's rate stays within float32: 0.05 * 2^99 is
  // about 3e28; 0.05 * 2^200 (rounds=201) is about 8e58.
  FT_EXPECT_OK(with({"local.lr_decay=2"}));
  EXPECT_THAT(with({"local.lr_decay=2", "rounds=201"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("round 200")));
  EXPECT_THAT(with({"federation.max_rejected_rounds=-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("federation.max_rejected_rounds")));
  EXPECT_EQ(c.federation().max_rejected_rounds(), 5);
}

TEST(ConfigTest, LoadFileErrors) {
  testing::TempDir dir;
  EXPECT_THAT(LoadConfigFile(dir.File("missing.json")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.json")));
  std::ofstream(dir.File("c.yaml")) << "rounds: 1\n";
  EXPECT_THAT(LoadConfigFile(dir.File("c.yaml")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("extension")));
  std::ofstream(dir.File("c.json")) << "{\"rounds\": ";
  EXPECT_THAT(LoadConfigFile(dir.File("c.json")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("c.json")));
  // A folder named like a config opens as an empty stream; it must not be reported as a
  // truncated config ("Unexpected end of string").
  std::filesystem::create_directories(dir.File("d.json"));
  EXPECT_THAT(LoadConfigFile(dir.File("d.json")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is a directory")));
  EXPECT_THAT(LoadConfigFile(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is a directory")));
}

}  // namespace
}  // namespace fedtrain
