#include "cli/flags.h"

#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "comm/grpc_server.h"

namespace fedtrain {

Flags& Flags::String(const char* name, std::string* out, const char* error, bool non_empty) {
  flags_.push_back({name, true,
                    [out, non_empty](const std::string& v) {
                      if (non_empty && v.empty()) return false;
                      *out = v;
                      return true;
                    },
                    error});
  return *this;
}

Flags& Flags::Append(const char* name, std::vector<std::string>* out, const char* error) {
  flags_.push_back({name, true,
                    [out](const std::string& v) {
                      out->push_back(v);
                      return true;
                    },
                    error});
  return *this;
}

namespace {

// "--name N" with N >= min, into an integer of type T.
template <typename T>
std::function<bool(const std::string&)> IntSetter(T* out, T min) {
  return [out, min](const std::string& v) {
    T n = 0;
    if (!absl::SimpleAtoi(v, &n) || n < min) return false;
    *out = n;
    return true;
  };
}

}  // namespace

Flags& Flags::Int(const char* name, int64_t* out, int64_t min, const char* error) {
  return Custom(name, IntSetter(out, min), error);
}

Flags& Flags::Int(const char* name, int* out, int min, const char* error) {
  return Custom(name, IntSetter(out, min), error);
}

Flags& Flags::Switch(const char* name, bool* out) {
  flags_.push_back({name, false,
                    [out](const std::string&) {
                      *out = true;
                      return true;
                    },
                    ""});
  return *this;
}

Flags& Flags::Custom(const char* name, std::function<bool(const std::string&)> set,
                     const char* error) {
  flags_.push_back({name, true, std::move(set), error});
  return *this;
}

int Flags::Parse(const std::vector<std::string>& args) const {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help_, stdout);
      return 0;
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags_)
      if (f.name == a) flag = &f;
    if (flag == nullptr && positional_ != nullptr && !a.empty() && a[0] != '-') {
      positional_->push_back(a);
      continue;
    }
    if (flag == nullptr) return Usage(absl::StrCat("unknown option '", a, "'"));
    std::string value;
    if (flag->takes_value) {
      if (i + 1 >= args.size()) return Usage(flag->error);
      value = args[++i];
    }
    if (!flag->set(value)) return Usage(flag->error);
  }
  return -1;
}

int Flags::Usage(const std::string& msg) const {
  std::fprintf(stderr, "fedtrain: %s\n\n%s", msg.c_str(), help_);
  return 2;
}

int Fail(const char* command, const std::string& msg) {
  std::fprintf(stderr, "fedtrain %s: %s\n", command, msg.c_str());
  return 1;
}

absl::Status ReadPemFiles(
    std::initializer_list<std::tuple<const char*, const std::string*, std::string*>> files) {
  for (const auto& [option, path, pem] : files) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadPemFile(option, *path);
    if (!text.ok()) return text.status();
    *pem = *std::move(text);
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
