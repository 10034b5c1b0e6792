// Config parsing via protobuf's JSON and text-format parsers, dotted-path overrides via
// reflection, and semantic validation with messages that name the field.
#include "proto/config_io.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "core/metrics.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty()) first = absl::StrCat("line ", line + 1, ":", column + 1, ": ", message);
  }
  std::string first;
};

absl::Status SetScalar(Message* msg, const FieldDescriptor* f, const std::string& value,
                       const std::string& path) {
  const Reflection* r = msg->GetReflection();
  auto bad = [&](const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", path, "=", value, ": expected ", what));
  };
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an integer");
      rep ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an integer");
      rep ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("a non-negative integer");
      rep ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("a non-negative integer");
      rep ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) return bad("a number");
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        rep ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
      } else {
        rep ? r->AddFloat(msg, f, static_cast<float>(v)) : r->SetFloat(msg, f, static_cast<float>(v));
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!absl::SimpleAtob(value, &v)) return bad("true or false");
      rep ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING:
      rep ? r->AddString(msg, f, value) : r->SetString(msg, f, value);
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* ev = f->enum_type()->FindValueByName(value);
      if (!ev) return bad(absl::StrCat("one of the names of ", f->enum_type()->name()).c_str());
      rep ? r->AddEnum(msg, f, ev) : r->SetEnum(msg, f, ev);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", path, ": is a message; set one of its fields (", path, ".x=...)"));
  }
  return absl::OkStatus();
}

void SetStructValue(google::protobuf::Struct* s, const std::string& key, const std::string& value) {
  google::protobuf::Value& v = (*s->mutable_fields())[key];
  double d;
  bool b;
  if (absl::SimpleAtod(value, &d)) {
    v.set_number_value(d);
  } else if (absl::SimpleAtob(value, &b) && (value == "true" || value == "false")) {
    v.set_bool_value(b);
  } else {
    v.set_string_value(value);
  }
}

std::vector<std::string> FieldNames(const Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
  return names;
}

// A JSON config checked before protobuf's parser sees it, for errors that name the place:
// a syntax error gives its line and column, an unknown field its path, line and column and
// the fields its section has. Values are left to protobuf (whose type errors name the
// field). Objects inside a google.protobuf.Struct (plug-in params) are not checked.
class JsonConfigChecker {
 public:
  explicit JsonConfigChecker(const std::string& text) : t_(text) {}

  absl::Status Check(const Descriptor* root) {
    SkipSpace();
    FT_RETURN_IF_ERROR(Value(root, ""));
    SkipSpace();
    if (i_ < t_.size()) return Error("unexpected text after the config's closing '}'");
    return absl::OkStatus();
  }

 private:
  // Where byte `pos` is, as "line L, column C" (both from 1; columns count bytes).
  std::string Where(size_t pos) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < pos && k < t_.size(); ++k) {
      if (t_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return absl::StrCat("line ", line, ", column ", col);
  }
  absl::Status Error(const std::string& what) const { return ErrorAt(i_, what); }
  absl::Status ErrorAt(size_t pos, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(Where(pos), ": ", what));
  }
  std::string Found() const {
    if (i_ >= t_.size()) return "the end of the file";
    return absl::StrCat("'", t_.substr(i_, 1), "'");
  }
  void SkipSpace() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r'))
      ++i_;
  }

  absl::Status String(std::string* out) {
    if (i_ >= t_.size() || t_[i_] != '"') return Error(absl::StrCat("expected a string, found ", Found()));
    ++i_;
    std::string s;
    while (i_ < t_.size() && t_[i_] != '"') {
      if (static_cast<unsigned char>(t_[i_]) < 0x20)
        return Error("control character in a string (a string must end on its line)");
      if (t_[i_] == '\\') {
        if (++i_ >= t_.size()) break;
        if (std::string("\"\\/bfnrtu").find(t_[i_]) == std::string::npos)
          return Error(absl::StrCat("bad escape '\\", t_.substr(i_, 1), "' in a string"));
      }
      s += t_[i_++];
    }
    if (i_ >= t_.size()) return Error("unterminated string");
    ++i_;
    if (out != nullptr) *out = std::move(s);
    return absl::OkStatus();
  }

  // Skips a number or a literal (true, false, null).
  absl::Status Scalar() {
    const size_t start = i_;
    while (i_ < t_.size() && (absl::ascii_isalnum(t_[i_]) || t_[i_] == '-' || t_[i_] == '+' ||
                              t_[i_] == '.'))
      ++i_;
    const std::string tok = t_.substr(start, i_ - start);
    if (tok.empty()) {
      i_ = start;
      return Error(absl::StrCat("expected a value, found ", Found()));
    }
    double d;
    if (tok == "true" || tok == "false" || tok == "null" ||
        ((absl::ascii_isdigit(tok[0]) || tok[0] == '-') && absl::SimpleAtod(tok, &d)))
      return absl::OkStatus();
    return ErrorAt(start, absl::StrCat("'", tok, "' is not a JSON value (strings need quotes)"));
  }

  // A value of field type `d` (null: not a message, or a Struct: not checked) at `path`.
  absl::Status Value(const Descriptor* d, const std::string& path) {
    SkipSpace();
    if (i_ >= t_.size()) return Error("expected a value, found the end of the file");
    const char c = t_[i_];
    if (c == '{') return Object(d, path);
    if (c == '[') {
      ++i_;
      SkipSpace();
      if (i_ < t_.size() && t_[i_] == ']') {
        ++i_;
        return absl::OkStatus();
      }
      while (true) {
        FT_RETURN_IF_ERROR(Value(d, path));
        SkipSpace();
        if (i_ < t_.size() && t_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < t_.size() && t_[i_] == ']') {
          ++i_;
          return absl::OkStatus();
        }
        return Error(absl::StrCat("expected ',' or ']' in a list, found ", Found()));
      }
    }
    if (c == '"') return String(nullptr);
    return Scalar();
  }

  absl::Status Object(const Descriptor* d, const std::string& path) {
    ++i_;  // '{'
    const bool check = d != nullptr && d->full_name() != "google.protobuf.Struct" &&
                       d->full_name() != "google.protobuf.Value";
    SkipSpace();
    if (i_ < t_.size() && t_[i_] == '}') {
      ++i_;
      return absl::OkStatus();
    }
    while (true) {
      SkipSpace();
      const size_t key_pos = i_;
      std::string key;
      if (i_ >= t_.size() || t_[i_] != '"')
        return Error(absl::StrCat("expected a field name in quotes, found ", Found(),
                                  i_ < t_.size() && t_[i_] == '}' ? " (a ',' before '}'?)" : ""));
      FT_RETURN_IF_ERROR(String(&key));
      const std::string field_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const Descriptor* sub = nullptr;
      if (check) {
        const FieldDescriptor* f = d->FindFieldByName(key);
        if (f == nullptr) f = d->FindFieldByCamelcaseName(key);
        if (f == nullptr)
          return ErrorAt(key_pos, absl::StrCat(
              "unknown config field '", field_path, "' (",
              path.empty() ? std::string("top level") : path, " has: ",
              absl::StrJoin(FieldNames(d), ", "), ")"));
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) sub = f->message_type();
      } else if (d != nullptr) {
        sub = d;  // inside a Struct: nested objects are Structs too (unchecked)
      }
      SkipSpace();
      if (i_ >= t_.size() || t_[i_] != ':')
        return Error(absl::StrCat("expected ':' after \"", key, "\", found ", Found()));
      ++i_;
      FT_RETURN_IF_ERROR(Value(sub, field_path));
      SkipSpace();
      if (i_ < t_.size() && t_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < t_.size() && t_[i_] == '}') {
        ++i_;
        return absl::OkStatus();
      }
      return Error(absl::StrCat("expected ',' or '}' after the value of '", field_path,
                                "', found ", Found()));
    }
  }

  const std::string& t_;
  size_t i_ = 0;
};

// Appends "(<message> has: ...)" to text-format parser errors about an unknown field, which
// name the message type but not its fields.
std::string WithKnownFields(const std::string& error) {
  static const char kNoField[] = "Message type \"";
  const size_t at = error.find(kNoField);
  if (at == std::string::npos || error.find("has no field named") == std::string::npos)
    return error;
  const size_t start = at + sizeof(kNoField) - 1;
  const size_t end = error.find('"', start);
  if (end == std::string::npos) return error;
  const Descriptor* d = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
      error.substr(start, end - start));
  if (d == nullptr) return error;
  return absl::StrCat(error, " (", d->name(), " has: ", absl::StrJoin(FieldNames(d), ", "), ")");
}

}  // namespace

absl::StatusOr<v1::ExperimentConfig> ParseConfig(const std::string& text, const std::string& format,
                                                 const std::string& source) {
  v1::ExperimentConfig cfg;
  if (format == "json") {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = false;
    if (absl::Status st = JsonConfigChecker(text).Check(cfg.GetDescriptor()); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", st.message()));
    auto st = google::protobuf::util::JsonStringToMessage(text, &cfg, opts);
    if (!st.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": invalid config: ", std::string(st.message())));
  } else if (format == "text") {
    google::protobuf::TextFormat::Parser parser;
    CollectErrors errors;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(text, &cfg))
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": invalid config: ", WithKnownFields(errors.first)));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": unknown config format '", format, "' (json or text)"));
  }
  return cfg;
}

absl::StatusOr<v1::ExperimentConfig> LoadConfigFile(const std::string& path) {
  // An ifstream opens a folder and reads nothing, which the parser reports as a truncated
  // config ("Unexpected end of string").
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": is a directory, not a config file"));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot open (",
                                                   std::strerror(errno), ")"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string format;
  if (absl::EndsWith(path, ".json")) {
    format = "json";
  } else if (absl::EndsWith(path, ".textproto") || absl::EndsWith(path, ".pbtxt") ||
             absl::EndsWith(path, ".txtpb") || absl::EndsWith(path, ".txt")) {
    format = "text";
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "config file ", path, ": unknown extension (use .json, .textproto, .pbtxt or .txt)"));
  }
  return ParseConfig(ss.str(), format, path);
}

absl::Status ApplyOverride(const std::string& assignment, v1::ExperimentConfig* cfg) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", assignment, ": expected path=value, e.g. local.lr=0.1"));
  const std::string path = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  Message* msg = cfg;
  std::string walked;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Descriptor* d = msg->GetDescriptor();
    if (d->full_name() == "google.protobuf.Struct") {
      // Free-form plug-in parameters: the rest of the path is the key.
      std::vector<std::string> rest(parts.begin() + i, parts.end());
      SetStructValue(static_cast<google::protobuf::Struct*>(msg), absl::StrJoin(rest, "."), value);
      return absl::OkStatus();
    }
    const FieldDescriptor* f = d->FindFieldByName(parts[i]);
    walked = walked.empty() ? parts[i] : absl::StrCat(walked, ".", parts[i]);
    if (f == nullptr)
      return absl::InvalidArgumentError(absl::StrCat(
          "--set ", path, ": unknown config field '", walked, "' (",
          d == cfg->GetDescriptor() ? "top level" : d->name(), " has: ",
          absl::StrJoin(FieldNames(d), ", "), ")"));
    const bool last = i + 1 == parts.size();
    if (!last) {
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated())
        return absl::InvalidArgumentError(
            absl::StrCat("--set ", path, ": '", walked, "' has no sub-fields"));
      msg = msg->GetReflection()->MutableMessage(msg, f);
      continue;
    }
    if (f->is_repeated()) {
      msg->GetReflection()->ClearField(msg, f);
      if (value.empty()) return absl::OkStatus();
      for (absl::string_view item : absl::StrSplit(value, ',')) {
        std::string s(absl::StripAsciiWhitespace(item));
        if (absl::Status st = SetScalar(msg, f, s, path); !st.ok()) return st;
      }
      return absl::OkStatus();
    }
    return SetScalar(msg, f, value, path);
  }
  return absl::OkStatus();
}

void FillDefaults(Message* msg) {
  const Descriptor* d = msg->GetDescriptor();
  if (d->full_name() == "google.protobuf.Struct") return;
  const Reflection* r = msg->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) continue;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->message_type()->full_name() == "google.protobuf.Struct" && !r->HasField(*msg, f))
        continue;
      FillDefaults(r->MutableMessage(msg, f));
      continue;
    }
    if (r->HasField(*msg, f)) continue;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(msg, f, f->default_value_int32()); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(msg, f, f->default_value_int64()); break;
      case FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(msg, f, f->default_value_uint32()); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(msg, f, f->default_value_uint64()); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(msg, f, f->default_value_double()); break;
      case FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(msg, f, f->default_value_float()); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(msg, f, f->default_value_bool()); break;
      case FieldDescriptor::CPPTYPE_STRING: r->SetString(msg, f, f->default_value_string()); break;
      case FieldDescriptor::CPPTYPE_ENUM: r->SetEnum(msg, f, f->default_value_enum()); break;
      case FieldDescriptor::CPPTYPE_MESSAGE: break;
    }
  }
}

namespace {
absl::Status OneOf(const std::string& field, const std::string& value,
                   std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (value == a) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " must be one of ",
                                                 absl::StrJoin(allowed, ", "), "; got '",
                                                 value, "'"));
}
absl::Status Positive(const std::string& field, double v) {
  if (v > 0 && std::isfinite(v)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " must be > 0, got ", v));
}
absl::Status NonNegative(const std::string& field, double v) {
  if (v >= 0 && std::isfinite(v)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " must be >= 0, got ", v));
}

// Names and ranges that do not depend on the model size; MakeCompressor checks k against d.
absl::Status ValidateCompression(const v1::ExperimentConfig& cfg) {
  const auto& c = cfg.compression();
  FT_RETURN_IF_ERROR(OneOf("compression.compressor", c.compressor(),
                           {"identity", "topk", "randk", "randk_scaled", "qsgd", "sign",
                            "natural"}));
  FT_RETURN_IF_ERROR(OneOf("compression.index_encoding", c.index_encoding(),
                           {"auto", "packed", "u32", "varint", "bitmap", "seed"}));
  FT_RETURN_IF_ERROR(OneOf("compression.value_type", c.value_type(), {"f32", "f64"}));
  FT_RETURN_IF_ERROR(OneOf("compression.feedback", c.feedback(),
                           {"none", "ef14", "ef21", "econtrol"}));
  FT_RETURN_IF_ERROR(OneOf("compression.tracker_init", c.tracker_init(), {"dense", "compressed"}));
  FT_RETURN_IF_ERROR(NonNegative("compression.clip_norm", c.clip_norm()));
  if (c.feedback() == "econtrol" && !(c.eta() >= 0 && c.eta() < 1))
    return absl::InvalidArgumentError(absl::StrCat(
        "compression.eta must be set in [0, 1) for feedback econtrol (docs/compression.md §2.4 suggests "
        "delta/8 .. delta, e.g. k_fraction/2 for topk); got ", c.eta()));
  // Whether the feedback fits the algorithm is checked with the algorithm's traits
  // (aggregators/tracker_server.h CheckFeedback, called by ResolveConfig).
  return absl::OkStatus();
}

// Names and ranges of the privacy section; what needs the accountant (a budget smaller than one
// round, calibration) or the algorithm (one up vector) is checked when a run is set up
// (runtime/privacy_setup.h).
absl::Status ValidatePrivacy(const v1::ExperimentConfig& cfg) {
  const auto& p = cfg.privacy();
  FT_RETURN_IF_ERROR(OneOf("privacy.mechanism", p.mechanism(), {"none", "rqm", "gaussian"}));
  FT_RETURN_IF_ERROR(NonNegative("privacy.target_epsilon", p.target_epsilon()));
  FT_RETURN_IF_ERROR(NonNegative("privacy.budget_epsilon", p.budget_epsilon()));
  if (p.mechanism() == "none") {
    if (p.target_epsilon() > 0 || p.budget_epsilon() > 0)
      return absl::InvalidArgumentError(
          "privacy.target_epsilon and privacy.budget_epsilon need a privacy.mechanism (rqm or "
          "gaussian)");
    return absl::OkStatus();
  }
  FT_RETURN_IF_ERROR(Positive("privacy.clip", p.clip()));
  if (p.mechanism() == "rqm") {
    FT_RETURN_IF_ERROR(NonNegative("privacy.range_extension", p.range_extension()));
    if (p.range_extension() == 0 && p.target_epsilon() == 0)
      return absl::InvalidArgumentError(
          "privacy.range_extension must be > 0 (at 0 the privacy loss is infinite), or 0 with "
          "privacy.target_epsilon > 0 to calibrate it");
    if (p.range_extension() > 0 && p.target_epsilon() > 0)
      return absl::InvalidArgumentError(
          "privacy.target_epsilon calibrates privacy.range_extension: leave range_extension at "
          "0 (or drop target_epsilon)");
    if (p.levels() < 2 || p.levels() > 256)
      return absl::InvalidArgumentError(
          absl::StrCat("privacy.levels must be in [2, 256], got ", p.levels()));
    if (!(p.keep_prob() > 0 && p.keep_prob() < 1))
      return absl::InvalidArgumentError(absl::StrCat(
          "privacy.keep_prob must be in (0, 1), got ", p.keep_prob(),
          " (1 is plain stochastic rounding: infinite privacy loss)"));
  } else {  // gaussian
    FT_RETURN_IF_ERROR(
        OneOf("privacy.placement", p.placement(), {"local", "distributed", "central"}));
    FT_RETURN_IF_ERROR(NonNegative("privacy.noise_multiplier", p.noise_multiplier()));
    if (p.noise_multiplier() == 0 && p.target_epsilon() == 0)
      return absl::InvalidArgumentError(
          "privacy.noise_multiplier must be > 0 (no noise: infinite privacy loss), or 0 with "
          "privacy.target_epsilon > 0 to calibrate it");
    if (p.noise_multiplier() > 0 && p.target_epsilon() > 0)
      return absl::InvalidArgumentError(
          "privacy.target_epsilon calibrates privacy.noise_multiplier: leave noise_multiplier "
          "at 0 (or drop target_epsilon)");
    if (p.placement() != "local") {
      if (p.guarantee() != "trusted_aggregator")
        return absl::InvalidArgumentError(absl::StrCat(
            "privacy.placement ", p.placement(), " needs privacy.guarantee trusted_aggregator ",
            "(only the aggregate carries enough noise)"));
      if (cfg.algorithm().weighting() != "uniform")
        return absl::InvalidArgumentError(absl::StrCat(
            "privacy.placement ", p.placement(), " needs algorithm.weighting uniform (the noise ",
            "is calibrated to the plain mean of the clipped updates)"));
    }
  }
  if (!(p.delta() > 0 && p.delta() < 1))
    return absl::InvalidArgumentError(
        absl::StrCat("privacy.delta must be in (0, 1), got ", p.delta()));
  FT_RETURN_IF_ERROR(
      OneOf("privacy.guarantee", p.guarantee(), {"untrusted_server", "trusted_aggregator"}));
  if (p.amplification() && p.guarantee() != "trusted_aggregator")
    return absl::InvalidArgumentError(
        "privacy.amplification needs privacy.guarantee trusted_aggregator (an untrusted server "
        "sees who took part)");
  if (p.amplification() && !p.secret_sampling())
    return absl::InvalidArgumentError(
        "privacy.amplification is claimed without privacy.secret_sampling: amplification by "
        "client sampling holds only if the adversary cannot see who took part");
  const auto& c = cfg.compression();
  if (c.compressor() != "identity")
    return absl::InvalidArgumentError(absl::StrCat(
        "compression.compressor must be identity with privacy.mechanism ", p.mechanism(),
        " (the mechanism is the quantizer), got ", c.compressor()));
  if (c.feedback() != "none")
    return absl::InvalidArgumentError(absl::StrCat(
        "compression.feedback must be none with privacy.mechanism ", p.mechanism(), ", got ",
        c.feedback()));
  return absl::OkStatus();
}

// data.normalize and its statistics.
absl::Status ValidateNormalize(const v1::ExperimentConfig& cfg) {
  const auto& d = cfg.data();
  FT_RETURN_IF_ERROR(OneOf("data.normalize", d.normalize(), {"none", "scale", "standardize"}));
  if (!std::isfinite(d.mean()))
    return absl::InvalidArgumentError(absl::StrCat("data.mean must be finite, got ", d.mean()));
  FT_RETURN_IF_ERROR(NonNegative("data.std", d.std()));
  if (d.normalize() != "standardize") {
    if (d.mean() != 0 || d.std() != 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "data.mean and data.std apply to data.normalize standardize only; data.normalize is ",
          d.normalize()));
    return absl::OkStatus();
  }
  if (d.std() == 0 && d.mean() != 0)
    return absl::InvalidArgumentError(
        "data.mean is given without data.std: give both, or neither to compute them from the "
        "training split");
  if (cfg.partition().method() == "natural" && cfg.data().dataset() == "synthetic")
    return absl::InvalidArgumentError(
        "data.normalize standardize is not available with partition.method natural (the "
        "clients' data are generated per device); use scale");
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateConfig(const v1::ExperimentConfig& c) {
  FT_RETURN_IF_ERROR(OneOf("data.dataset", c.data().dataset(), {"fashion_mnist", "synthetic", "files"}));
  FT_RETURN_IF_ERROR(OneOf("model.type", c.model().type(), {"mlp", "softmax"}));
  for (int i = 0; i < c.model().hidden_size(); ++i)
    FT_RETURN_IF_ERROR(Positive(absl::StrCat("model.hidden[", i, "]"), c.model().hidden(i)));
  if (c.model().type() == "softmax" && c.model().hidden_size() > 0)
    return absl::InvalidArgumentError("model.hidden must be empty for model.type softmax");
  FT_RETURN_IF_ERROR(OneOf("partition.method", c.partition().method(),
                     {"iid", "dirichlet", "shards", "natural"}));
  if (c.partition().method() == "natural" && c.data().dataset() != "synthetic" &&
      !(c.data().dataset() == "files" && !c.data().files().client_column().empty()))
    return absl::InvalidArgumentError(
        "partition.method natural needs a data set with its own split (data.dataset synthetic, "
        "or data.dataset files with data.files.client_column)");
  if (c.data().dataset() == "files") {
    FT_RETURN_IF_ERROR(OneOf("data.files.format", c.data().files().format(), {"idx", "npy", "npz", "csv"}));
    if (c.data().files().train().empty())
      return absl::InvalidArgumentError("data.files.train is empty: name the training file");
    if (!c.data().files().client_column().empty() && c.data().files().format() != "csv")
      return absl::InvalidArgumentError("data.files.client_column applies to format csv only");
    if (c.federation().eval_clients() > 0)
      return absl::InvalidArgumentError(
          "federation.eval_clients applies to data.dataset synthetic (clients with their own test "
          "data); data.dataset files evaluates on its test split");
  }
  FT_RETURN_IF_ERROR(ValidateNormalize(c));
  if (c.partition().method() == "dirichlet") FT_RETURN_IF_ERROR(Positive("partition.alpha", c.partition().alpha()));
  if (c.partition().method() == "shards")
    FT_RETURN_IF_ERROR(Positive("partition.classes_per_client", c.partition().classes_per_client()));
  FT_RETURN_IF_ERROR(NonNegative("partition.min_size", c.partition().min_size()));
  const auto& fed = c.federation();
  FT_RETURN_IF_ERROR(Positive("federation.num_clients", fed.num_clients()));
  FT_RETURN_IF_ERROR(Positive("federation.clients_per_round", fed.clients_per_round()));
  if (fed.clients_per_round() > fed.num_clients())
    return absl::InvalidArgumentError(absl::StrCat(
        "federation.clients_per_round (", fed.clients_per_round(),
        ") must not exceed federation.num_clients (", fed.num_clients(), ")"));
  FT_RETURN_IF_ERROR(OneOf("federation.sampling", fed.sampling(), {"uniform_fixed"}));
  FT_RETURN_IF_ERROR(Positive("federation.round_timeout_s", fed.round_timeout_s()));
  FT_RETURN_IF_ERROR(OneOf("federation.state_store", fed.state_store(), {"memory", "file"}));
  if (fed.state_store() != "file" && !fed.state_dir().empty())
    return absl::InvalidArgumentError(absl::StrCat(
        "federation.state_dir (", fed.state_dir(), ") is only used with federation.state_store "
        "file, not ", fed.state_store()));
  FT_RETURN_IF_ERROR(NonNegative("federation.eval_clients", fed.eval_clients()));
  FT_RETURN_IF_ERROR(NonNegative("federation.over_selection", fed.over_selection()));
  FT_RETURN_IF_ERROR(NonNegative("federation.min_updates", static_cast<double>(fed.min_updates())));
  if (fed.min_updates() > fed.clients_per_round())
    return absl::InvalidArgumentError(absl::StrCat(
        "federation.min_updates (", fed.min_updates(), ") must not exceed "
        "federation.clients_per_round (", fed.clients_per_round(), ")"));
  FT_RETURN_IF_ERROR(NonNegative("checkpoint.every", static_cast<double>(c.checkpoint().every())));
  if (fed.eval_clients() > fed.num_clients())
    return absl::InvalidArgumentError(absl::StrCat(
        "federation.eval_clients (", fed.eval_clients(), ") must not exceed federation.num_clients (",
        fed.num_clients(), ")"));
  if (fed.eval_clients() > 0 && c.partition().method() != "natural")
    return absl::InvalidArgumentError(
        "federation.eval_clients needs partition.method natural (clients with their own test "
        "data); other partitions evaluate on the data set's test split");
  if (c.data().dataset() == "synthetic" && c.partition().method() == "natural" &&
      fed.num_clients() != c.data().synthetic().num_devices())
    return absl::InvalidArgumentError(absl::StrCat(
        "federation.num_clients (", fed.num_clients(), ") must equal data.synthetic.num_devices (",
        c.data().synthetic().num_devices(), ") with partition.method natural"));
  const auto& l = c.local();
  FT_RETURN_IF_ERROR(Positive("local.lr", l.lr()));
  FT_RETURN_IF_ERROR(Positive("local.lr_decay", l.lr_decay()));
  // The local steps run in float32 (models/local_sgd.cc): a rate above the largest float
  // becomes infinite there and every update non-finite.
  constexpr double kMaxRate = std::numeric_limits<float>::max();
  if (l.lr() > kMaxRate)
    return absl::InvalidArgumentError(absl::StrCat(
        "local.lr must be at most ", kMaxRate, " (the local steps run in float32), got ", l.lr()));
  if (l.lr_decay() > 1 && c.rounds() > 1) {
    // The largest rate of the run is lr * lr_decay^(rounds-1); compared in logs, which
    // cannot overflow.
    const double log_max = std::log(l.lr()) + std::log(l.lr_decay()) * static_cast<double>(c.rounds() - 1);
    if (!(log_max <= std::log(kMaxRate)))
      return absl::InvalidArgumentError(absl::StrCat(
          "local.lr_decay ", l.lr_decay(), " makes the rate of round ", c.rounds() - 1,
          " (local.lr * local.lr_decay^", c.rounds() - 1, ") exceed ", kMaxRate,
          ", the largest float32 the local steps can use; lower local.lr_decay or rounds"));
  }
  FT_RETURN_IF_ERROR(Positive("local.batch_size", l.batch_size()));
  FT_RETURN_IF_ERROR(NonNegative("local.steps", l.steps()));
  FT_RETURN_IF_ERROR(NonNegative("local.epochs", l.epochs()));
  if (l.steps() == 0 && l.epochs() == 0)
    return absl::InvalidArgumentError("one of local.steps or local.epochs must be > 0");
  if (!(l.momentum() >= 0 && l.momentum() < 1))
    return absl::InvalidArgumentError(absl::StrCat(
        "local.momentum (heavy ball) must be in [0, 1), got ", l.momentum(),
        " (at 1 or more the velocity grows without bound)"));
  FT_RETURN_IF_ERROR(NonNegative("local.weight_decay", l.weight_decay()));
  FT_RETURN_IF_ERROR(NonNegative("local.clip_norm", l.clip_norm()));
  FT_RETURN_IF_ERROR(Positive("algorithm.server_lr", c.algorithm().server_lr()));
  if (!c.algorithm().weighting().empty())  // "" = the algorithm's default
    FT_RETURN_IF_ERROR(OneOf("algorithm.weighting", c.algorithm().weighting(), {"samples", "uniform"}));
  FT_RETURN_IF_ERROR(ValidateCompression(c));
  FT_RETURN_IF_ERROR(ValidatePrivacy(c));
  FT_RETURN_IF_ERROR(Positive("rounds", c.rounds()));
  FT_RETURN_IF_ERROR(Positive("eval_every", c.eval_every()));
  FT_RETURN_IF_ERROR(NonNegative("threads", c.threads()));
  if (c.threads() > kMaxThreads)
    return absl::InvalidArgumentError(absl::StrCat(
        "threads must be at most ", kMaxThreads, " (0 = one per core), got ", c.threads(),
        ": every thread holds a model clone and its buffers, and more threads than cores only "
        "add memory"));
  FT_RETURN_IF_ERROR(NonNegative("federation.max_rejected_rounds",
                                 static_cast<double>(fed.max_rejected_rounds())));
  FT_RETURN_IF_ERROR(OneOf("output.progress", c.output().progress(), {"auto", "bar", "lines", "none"}));
  if (c.data().dataset() == "synthetic") {
    const auto& s = c.data().synthetic();
    FT_RETURN_IF_ERROR(NonNegative("data.synthetic.alpha", s.alpha()));
    FT_RETURN_IF_ERROR(NonNegative("data.synthetic.beta", s.beta()));
    FT_RETURN_IF_ERROR(Positive("data.synthetic.num_devices", s.num_devices()));
    FT_RETURN_IF_ERROR(Positive("data.synthetic.dim", s.dim()));
    if (s.classes() < 2)
      return absl::InvalidArgumentError(
          absl::StrCat("data.synthetic.classes must be >= 2, got ", s.classes()));
  }
  return absl::OkStatus();
}

namespace {

// JSON string literals: core/metrics.h's JsonQuote (the same escaping as the metrics files).
std::string JsonString(const std::string& s) { return JsonQuote(s); }

// The shortest decimal text that parses back to `v` (std::to_chars' guarantee).
template <typename T>
std::string ShortestNumber(T v) {
  if (!std::isfinite(v)) return JsonString(v != v ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// Whether `f` of `msg` is a section that does not apply to this run (ConfigToRecordJson).
bool NotApplicable(const Message& msg, const FieldDescriptor* f) {
  const std::string& type = msg.GetDescriptor()->name();
  const Reflection* r = msg.GetReflection();
  auto str = [&](const char* field) {
    const FieldDescriptor* g = msg.GetDescriptor()->FindFieldByName(field);
    return g != nullptr ? r->GetString(msg, g) : std::string();
  };
  auto sub_str = [&](const FieldDescriptor* sub, const char* field) {
    const Message& m = r->GetMessage(msg, sub);
    const FieldDescriptor* g = m.GetDescriptor()->FindFieldByName(field);
    return g != nullptr ? m.GetReflection()->GetString(m, g) : std::string();
  };
  if (type == "ExperimentConfig") {
    if (f->name() == "attack") return sub_str(f, "name") == "none";
    if (f->name() == "privacy") return sub_str(f, "mechanism") == "none";
  }
  if (type == "DataConfig") {
    if (f->name() == "synthetic") return str("dataset") != "synthetic";
    if (f->name() == "mean" || f->name() == "std") return str("normalize") != "standardize";
  }
  return false;
}

void AppendRecordJson(const Message& msg, int indent, std::string* out) {
  const Descriptor* d = msg.GetDescriptor();
  if (d->full_name() == "google.protobuf.Struct") {  // free-form plug-in parameters
    google::protobuf::util::JsonPrintOptions opts;
    std::string s;
    (void)google::protobuf::util::MessageToJsonString(msg, &s, opts);
    *out += s;
    return;
  }
  const Reflection* r = msg.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated() ? r->FieldSize(msg, f) == 0 : !r->HasField(msg, f)) continue;
    if (NotApplicable(msg, f)) continue;
    fields.push_back(f);
  }
  if (fields.empty()) {
    *out += "{}";
    return;
  }
  const std::string pad(indent + 2, ' ');
  *out += "{\n";
  for (size_t k = 0; k < fields.size(); ++k) {
    const FieldDescriptor* f = fields[k];
    absl::StrAppend(out, pad, JsonString(f->name()), ": ");
    auto value = [&](int i) {  // i < 0: singular
      const bool rep = i >= 0;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          return absl::StrCat(rep ? r->GetRepeatedInt32(msg, f, i) : r->GetInt32(msg, f));
        case FieldDescriptor::CPPTYPE_INT64:
          return absl::StrCat(rep ? r->GetRepeatedInt64(msg, f, i) : r->GetInt64(msg, f));
        case FieldDescriptor::CPPTYPE_UINT32:
          return absl::StrCat(rep ? r->GetRepeatedUInt32(msg, f, i) : r->GetUInt32(msg, f));
        case FieldDescriptor::CPPTYPE_UINT64:
          return absl::StrCat(rep ? r->GetRepeatedUInt64(msg, f, i) : r->GetUInt64(msg, f));
        case FieldDescriptor::CPPTYPE_DOUBLE:
          return ShortestNumber(rep ? r->GetRepeatedDouble(msg, f, i) : r->GetDouble(msg, f));
        case FieldDescriptor::CPPTYPE_FLOAT:
          return ShortestNumber(rep ? r->GetRepeatedFloat(msg, f, i) : r->GetFloat(msg, f));
        case FieldDescriptor::CPPTYPE_BOOL:
          return std::string((rep ? r->GetRepeatedBool(msg, f, i) : r->GetBool(msg, f)) ? "true"
                                                                                        : "false");
        case FieldDescriptor::CPPTYPE_ENUM:
          return JsonString((rep ? r->GetRepeatedEnum(msg, f, i) : r->GetEnum(msg, f))->name());
        case FieldDescriptor::CPPTYPE_STRING:
          return JsonString(rep ? r->GetRepeatedString(msg, f, i) : r->GetString(msg, f));
        case FieldDescriptor::CPPTYPE_MESSAGE: {
          std::string s;
          AppendRecordJson(rep ? r->GetRepeatedMessage(msg, f, i) : r->GetMessage(msg, f),
                           indent + 2, &s);
          return s;
        }
      }
      return std::string("null");
    };
    if (f->is_repeated()) {
      *out += "[";
      for (int i = 0; i < r->FieldSize(msg, f); ++i) absl::StrAppend(out, i ? ", " : "", value(i));
      *out += "]";
    } else {
      *out += value(-1);
    }
    absl::StrAppend(out, k + 1 < fields.size() ? ",\n" : "\n");
  }
  absl::StrAppend(out, std::string(indent, ' '), "}");
}

}  // namespace

std::string ConfigToRecordJson(const v1::ExperimentConfig& resolved) {
  std::string out;
  AppendRecordJson(resolved, 0, &out);
  return out;
}

std::string ConfigToJson(const Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, opts);
  return out;
}

}  // namespace fedtrain
