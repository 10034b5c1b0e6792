// Command-line parsing shared by every subcommand: flags declared once with the variable they
// fill and the usage error they give, parsed by CLI11 (so "--name VALUE" and "--name=VALUE"
// both work for every option), "--help", unknown options, and the common exits
// (Usage: the message and the command's help on stderr, exit code 2; Fail: "fedtrain
// <command>: message", exit code 1). Also reads the PEM files of the TLS options.
// Not thread-safe; one Flags per command invocation.
#ifndef FEDTRAIN_CLI_FLAGS_H_
#define FEDTRAIN_CLI_FLAGS_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"

namespace fedtrain {

class Flags {
 public:
  // `help` is printed by --help (on `out`) and after a usage error (on `err`).
  explicit Flags(const char* help, std::FILE* out = stdout, std::FILE* err = stderr)
      : help_(help), out_(out), err_(err) {}

  // `name` is one option ("--name") or several spellings of it separated by commas
  // ("-o,--output"); a value is given as "--name VALUE" or "--name=VALUE".
  // "--name VALUE". `error` is the usage error when the value is missing (or, with
  // non_empty, empty).
  Flags& String(const char* name, std::string* out, const char* error, bool non_empty = false);
  // "--name VALUE", repeatable: each value is appended.
  Flags& Append(const char* name, std::vector<std::string>* out, const char* error);
  // "--name N" with N >= min.
  Flags& Int(const char* name, int64_t* out, int64_t min, const char* error);
  Flags& Int(const char* name, int* out, int min, const char* error);
  // "--name": sets *out to true.
  Flags& Switch(const char* name, bool* out);
  // "--name VALUE" handled by `set`, which returns false for a bad value.
  Flags& Custom(const char* name, std::function<bool(const std::string&)> set,
                const char* error);

  // Arguments that do not start with '-' are appended to *out (without this, they are
  // unknown options).
  Flags& Positional(std::vector<std::string>* out) {
    positional_ = out;
    return *this;
  }

  // Arguments this parser does not know (options and their values) are appended to *out in
  // their order instead of being refused: for commands that pass them on (`fedtrain mpi`).
  // A value that starts with '-' must then be attached to its option ("--opt=-x").
  Flags& Rest(std::vector<std::string>* out) {
    rest_ = out;
    return *this;
  }

  // Parses `args`. Returns -1 when the command should go on, otherwise the exit code to return
  // at once: 0 after --help/-h (help printed), 2 after a usage error (printed).
  int Parse(const std::vector<std::string>& args) const;
  // Prints "fedtrain: <msg>" and the help on stderr; returns 2.
  int Usage(const std::string& msg) const;

 private:
  struct Flag {
    std::string name;
    bool takes_value;
    std::function<bool(const std::string&)> set;
    std::string error;
  };
  const char* help_;
  std::FILE* out_;
  std::FILE* err_;
  std::vector<Flag> flags_;
  std::vector<std::string>* positional_ = nullptr;
  std::vector<std::string>* rest_ = nullptr;
};

// The options every command takes (Flags adds them), printed after each command's help.
extern const char kCommonOptionsHelp[];
// A command's help text followed by kCommonOptionsHelp, as --help and `fedtrain help CMD`
// print it.
void PrintHelp(const char* help, std::FILE* out);

// Prints "fedtrain <command>: <msg>" on stderr; returns 1.
int Fail(const char* command, const std::string& msg);

// Reads each (option, path, PEM text) triple whose path is not empty; the first file that
// cannot be read gives an error naming its option (comm/grpc_server.h ReadPemFile).
absl::Status ReadPemFiles(
    std::initializer_list<std::tuple<const char*, const std::string*, std::string*>> files);

}  // namespace fedtrain

#endif  // FEDTRAIN_CLI_FLAGS_H_
