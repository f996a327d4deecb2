// A tiny command-line parser shared by the `flashrt` subcommands: declared flags and options
// (--name VALUE or --name=VALUE, repeatable ones), positionals, generated --help, and typed
// getters that reject bad numbers. Every problem throws UsageError, which main.cpp turns into
// a message plus the usage line on stderr and exit code 2.
// Tests: tests/python/test_cli.py (usage errors, --help of every command).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace frt::cli {

class UsageError : public std::runtime_error {
 public:
  UsageError(const std::string& message, std::string usage)
      : std::runtime_error(message), usage_(std::move(usage)) {}
  const std::string& usage() const { return usage_; }

 private:
  std::string usage_;
};

class Args {
 public:
  // command: "run", "demo", ... ; summary: one line for --help.
  Args(std::string command, std::string summary);

  // A boolean switch (--json).
  Args& flag(const std::string& name, const std::string& help);
  // An option with a value; `fallback` is shown in --help and returned when absent.
  Args& option(const std::string& name, const std::string& metavar, const std::string& help,
               const std::string& fallback = "");
  // An option that may be given several times (--image A --image B).
  Args& repeated(const std::string& name, const std::string& metavar, const std::string& help);
  Args& positional(const std::string& name, const std::string& help);
  // Free text appended to --help (examples, notes).
  Args& epilog(const std::string& text);

  // argv[0] is the subcommand name. Returns false if --help/-h was given (help printed to
  // stdout). Throws UsageError for unknown flags, missing values, extra or missing positionals.
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;  // given on the command line
  std::string str(const std::string& name) const;
  std::vector<std::string> all(const std::string& name) const;
  std::string pos(size_t i) const;
  // Integer in [lo, hi]; throws UsageError naming the option and the value otherwise.
  int64_t integer(const std::string& name, int64_t lo, int64_t hi) const;
  uint64_t u64(const std::string& name) const;
  // "0.1,0.2,-3" → floats; NaN/inf or a bad number → UsageError naming the 0-based position.
  std::vector<float> floats(const std::string& name) const;
  // Choice among `allowed`; else UsageError listing them.
  std::string choice(const std::string& name, const std::vector<std::string>& allowed) const;

  std::string usage() const;  // "usage: flashrt run [options] ..."
  std::string help() const;
  [[noreturn]] void fail(const std::string& message) const;

 private:
  struct Spec {
    std::string name, metavar, help, fallback;
    bool takes_value = false, is_repeated = false;
  };
  const Spec* find(const std::string& name) const;

  std::string command_, summary_, epilog_;
  std::vector<Spec> specs_;
  std::vector<std::pair<std::string, std::string>> positional_specs_;
  std::vector<std::pair<std::string, std::string>> given_;  // (name, value) in order
  std::vector<std::string> positionals_;
};

// Parses one number, whole string; false if it is not a number.
bool parse_int64(const std::string& text, int64_t* out);
bool parse_float(const std::string& text, float* out);

}  // namespace frt::cli
