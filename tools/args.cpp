// The `flashrt` subcommands' argument parser (see args.h).
// Tests: tests/python/test_cli.py.
#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace frt::cli {

bool parse_int64(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return false;
  *out = v;
  return true;
}

bool parse_float(const std::string& text, float* out) {
  // strtof skips leading spaces; trailing ones are allowed too so "0.1, 0.2" works.
  size_t b = text.find_first_not_of(" \t");
  size_t e = text.find_last_not_of(" \t");
  if (b == std::string::npos) return false;
  const std::string t = text.substr(b, e - b + 1);
  errno = 0;
  char* end = nullptr;
  const float v = std::strtof(t.c_str(), &end);
  if (end != t.c_str() + t.size() || errno == ERANGE) return false;
  *out = v;
  return true;
}

Args::Args(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_.push_back(Spec{name, "", help, "", false, false});
  return *this;
}

Args& Args::option(const std::string& name, const std::string& metavar, const std::string& help,
                   const std::string& fallback) {
  specs_.push_back(Spec{name, metavar, help, fallback, true, false});
  return *this;
}

Args& Args::repeated(const std::string& name, const std::string& metavar, const std::string& help) {
  specs_.push_back(Spec{name, metavar, help, "", true, true});
  return *this;
}

Args& Args::positional(const std::string& name, const std::string& help) {
  positional_specs_.emplace_back(name, help);
  return *this;
}

Args& Args::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const Args::Spec* Args::find(const std::string& name) const {
  for (const Spec& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

void Args::fail(const std::string& message) const { throw UsageError(message, usage()); }

bool Args::parse(int argc, char** argv) {
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (!only_positionals && (a == "--help" || a == "-h")) {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (!only_positionals && a == "--") {
      only_positionals = true;
      continue;
    }
    if (only_positionals || a.size() < 2 || a[0] != '-') {
      positionals_.push_back(a);
      continue;
    }
    std::string name = a, value;
    bool inline_value = false;
    const size_t eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    const Spec* s = find(name);
    if (!s) fail("unknown option '" + name + "'");
    if (!s->takes_value) {
      if (inline_value) fail("option '" + name + "' takes no value");
      given_.emplace_back(name, "1");
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) fail("option '" + name + "' needs a value (" + s->metavar + ")");
      value = argv[++i];
    }
    if (!s->is_repeated)
      for (const auto& g : given_)
        if (g.first == name) fail("option '" + name + "' given more than once");
    given_.emplace_back(name, value);
  }
  if (positionals_.size() > positional_specs_.size())
    fail("unexpected argument '" + positionals_[positional_specs_.size()] + "'");
  if (positionals_.size() < positional_specs_.size())
    fail("missing argument " + positional_specs_[positionals_.size()].first);
  return true;
}

bool Args::has(const std::string& name) const {
  for (const auto& g : given_)
    if (g.first == name) return true;
  return false;
}

std::string Args::str(const std::string& name) const {
  for (const auto& g : given_)
    if (g.first == name) return g.second;
  const Spec* s = find(name);
  return s ? s->fallback : "";
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& g : given_)
    if (g.first == name) out.push_back(g.second);
  return out;
}

std::string Args::pos(size_t i) const { return i < positionals_.size() ? positionals_[i] : ""; }

int64_t Args::integer(const std::string& name, int64_t lo, int64_t hi) const {
  const std::string text = str(name);
  int64_t v = 0;
  if (!parse_int64(text, &v) || v < lo || v > hi)
    fail(name + ": expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
         ", got '" + text + "'");
  return v;
}

uint64_t Args::u64(const std::string& name) const {
  const std::string text = str(name);
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || errno != 0 || end != text.c_str() + text.size())
    fail(name + ": expected a non-negative integer, got '" + text + "'");
  return v;
}

std::vector<float> Args::floats(const std::string& name) const {
  const std::string text = str(name);
  std::vector<float> out;
  if (text.find_first_not_of(" \t") == std::string::npos) return out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    float v = 0.f;
    if (!parse_float(item, &v))
      fail(name + ": value " + std::to_string(out.size()) + " ('" + item +
           "') is not a number; expected comma-separated floats like 0.1,-0.2,0");
    if (!std::isfinite(v))
      fail(name + ": value " + std::to_string(out.size()) + " is " + item +
           "; every value must be finite");
    out.push_back(v);
  }
  if (!text.empty() && text.back() == ',')
    fail(name + ": value " + std::to_string(out.size()) + " is empty (trailing comma)");
  return out;
}

std::string Args::choice(const std::string& name, const std::vector<std::string>& allowed) const {
  const std::string v = str(name);
  std::string list;
  for (const std::string& a : allowed) {
    if (a == v) return v;
    list += (list.empty() ? "" : ", ") + a;
  }
  fail(name + ": '" + v + "' is not one of " + list);
}

std::string Args::usage() const {
  std::string u = "usage: flashrt " + command_;
  if (!specs_.empty()) u += " [options]";
  for (const auto& p : positional_specs_) u += " " + p.first;
  return u;
}

std::string Args::help() const {
  std::ostringstream os;
  os << usage() << "\n\n" << summary_ << "\n";
  if (!positional_specs_.empty()) {
    os << "\narguments:\n";
    for (const auto& p : positional_specs_) os << "  " << p.first << "\n      " << p.second << "\n";
  }
  os << "\noptions:\n";
  for (const Spec& s : specs_) {
    os << "  " << s.name;
    if (s.takes_value) os << " " << s.metavar;
    os << "\n      " << s.help;
    if (s.is_repeated) os << " (repeatable)";
    if (!s.fallback.empty()) os << " [default: " << s.fallback << "]";
    os << "\n";
  }
  os << "  -h, --help\n      show this help and exit\n";
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
  return os.str();
}

}  // namespace frt::cli
