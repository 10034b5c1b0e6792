#include "cli/flags.h"

#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "CLI/CLI.hpp"
#include "comm/grpc_server.h"
#include "core/log.h"

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

const char kCommonOptionsHelp[] = R"(
options of every command:
  --log-level LEVEL    the least severe log line printed on stderr: debug, info (default),
                       warning or error (log lines carry a UTC timestamp and their level)
)";

void PrintHelp(const char* help, std::FILE* out) {
  std::fputs(help, out);
  std::fputs(kCommonOptionsHelp, out);
}

int Flags::Parse(const std::vector<std::string>& args) const {
  for (const std::string& a : args)
    if (a == "--help" || a == "-h") {
      PrintHelp(help_, out_);
      return 0;
    }
  CLI::App app;
  app.set_help_flag();  // our own help text, printed above
  app.allow_extras(true);
  app.allow_windows_style_options(false);
  // The usage error of the flag whose value was refused (CLI11 only sees a ValidationError).
  std::string bad_value_error;
  for (const Flag& f : flags_) {
    if (!f.takes_value) {
      app.add_flag_callback(f.name, [&f] { f.set(""); });
      continue;
    }
    CLI::Option* o = app.add_option(
        f.name, [&f, &bad_value_error](const CLI::results_t& r) {
          if (r.size() != 1 || !f.set(r[0])) {
            bad_value_error = f.error;
            throw CLI::ValidationError(f.name, f.error);
          }
          return true;
        });
    // Each occurrence is handed to `set` as it is parsed, in command-line order, so repeated
    // options (--set) and options that add to the same list keep their order.
    o->type_size(1)->expected(1)->trigger_on_parse();
  }
  // --log-level, which every command takes.
  const Flag log_level{"--log-level", true,
                       [](const std::string& v) {
                         absl::StatusOr<LogLevel> l = ParseLogLevel(v);
                         if (!l.ok()) return false;
                         SetLogLevel(*l);
                         return true;
                       },
                       "--log-level needs debug, info, warning or error"};
  app.add_option(log_level.name, [&log_level, &bad_value_error](const CLI::results_t& r) {
       if (r.size() != 1 || !log_level.set(r[0])) {
         bad_value_error = log_level.error;
         throw CLI::ValidationError(log_level.name, log_level.error);
       }
       return true;
     })->type_size(1)->expected(1)->trigger_on_parse();
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses from the back
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (!bad_value_error.empty()) return Usage(bad_value_error);
    // A value missing after the last option: name the option by its own usage error.
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
      const Flag* best = nullptr;
      size_t best_len = 0;
      const std::string what = e.what();
      for (const Flag& f : flags_)
        for (absl::string_view n : absl::StrSplit(f.name, ','))
          if (n.size() > best_len && what.find(std::string(n)) != std::string::npos) {
            best = &f;
            best_len = n.size();
          }
      if (best != nullptr) return Usage(best->error);
      if (what.find(log_level.name) != std::string::npos) return Usage(log_level.error);
    }
    return Usage(e.what());
  }
  for (const std::string& a : app.remaining()) {
    if (rest_ != nullptr) {
      rest_->push_back(a);
    } else if (positional_ != nullptr && (a.empty() || a[0] != '-' || a == "-")) {
      positional_->push_back(a);
    } else if (!a.empty() && a[0] == '-') {
      return Usage(absl::StrCat("unknown option '", a.substr(0, a.find('=')), "'"));
    } else {
      return Usage(absl::StrCat("unexpected argument '", a, "'"));
    }
  }
  return -1;
}

int Flags::Usage(const std::string& msg) const {
  std::fprintf(err_, "fedtrain: %s\n\n", msg.c_str());
  PrintHelp(help_, err_);
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
