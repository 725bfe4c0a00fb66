// A small strict command-line parser for rdepth's sub-commands: declared flags only, every value
// checked (numbers, lists), every error naming the flag; generates each command's --help text.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "recurrent_depth/core/error.hpp"

namespace rdepth {

using recurrent_depth::fail;

struct FlagSpec {
  std::string name;        // with the dashes: "--steps"
  std::string value_name;  // "R"; empty for a switch that takes no value
  std::string help;        // one line
};

// Parses "--flag value", "--flag=value" and "--switch". Positional arguments, unknown or repeated
// flags, missing values and malformed numbers are errors (recurrent_depth::Error).
class Arguments {
 public:
  Arguments(std::string command, std::string synopsis, std::string description,
            std::vector<FlagSpec> flags)
      : command_(std::move(command)),
        synopsis_(std::move(synopsis)),
        description_(std::move(description)),
        flags_(std::move(flags)) {
    flags_.push_back({"--help", "", "print this help and exit"});
  }

  // `args` are the words after the command name. Returns false when --help (or -h) was given:
  // the caller then prints help() and exits successfully, whatever else is on the line.
  bool parse(const std::vector<std::string>& args) {
    for (const std::string& word : args)
      if (word == "--help" || word == "-h") return false;
    for (std::size_t i = 0; i < args.size(); ++i) {
      const std::string& word = args[i];
      if (word.size() < 3 || word.rfind("--", 0) != 0) {
        fail("unexpected argument '", word, "' (flags start with --; see rdepth ", command_,
             " --help)");
      }
      const std::size_t equals = word.find('=');
      const std::string name = word.substr(0, equals);
      const FlagSpec* spec = find(name);
      if (spec == nullptr) {
        fail("unknown flag ", name, " (see rdepth ", command_, " --help)");
      }
      if (values_.contains(name)) fail(name, " is given more than once");
      if (spec->value_name.empty()) {
        if (equals != std::string::npos) fail(name, " takes no value");
        values_[name] = "";
        continue;
      }
      std::string value;
      if (equals != std::string::npos) {
        value = word.substr(equals + 1);
      } else {
        if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0) {
          fail(name, " needs a value (", name, " ", spec->value_name, ")");
        }
        value = args[++i];
      }
      if (value.empty()) fail(name, " needs a non-empty value");
      values_[name] = std::move(value);
    }
    return true;
  }

  bool has(std::string_view name) const {
    check_declared(name);
    return values_.contains(std::string(name));
  }

  std::optional<std::string> get(std::string_view name) const {
    check_declared(name);
    const auto it = values_.find(std::string(name));
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

  std::string required(std::string_view name) const {
    const auto value = get(name);
    if (!value) fail(name, " is required (see rdepth ", command_, " --help)");
    return *value;
  }

  // An integer in [minimum, maximum]; nullopt when the flag is absent.
  std::optional<std::int64_t> integer(std::string_view name, std::int64_t minimum,
                                      std::int64_t maximum) const {
    const auto value = get(name);
    if (!value) return std::nullopt;
    const std::int64_t n = parse_integer(name, *value);
    if (n < minimum || n > maximum) fail_range(name, *value, minimum, maximum);
    return n;
  }
  std::optional<std::uint64_t> unsigned_integer(std::string_view name) const {
    const auto value = get(name);
    if (!value) return std::nullopt;
    std::uint64_t n = 0;
    const char* end = value->data() + value->size();
    const auto [ptr, ec] = std::from_chars(value->data(), end, n);
    if (ec == std::errc::result_out_of_range) fail(name, " ", *value, " is too large");
    if (ec != std::errc() || ptr != end) {
      fail(name, " expects a non-negative integer, got '", *value, "'");
    }
    return n;
  }

  std::optional<double> number(std::string_view name) const {
    const auto value = get(name);
    if (!value) return std::nullopt;
    double x = 0;
    const char* end = value->data() + value->size();
    const auto [ptr, ec] = std::from_chars(value->data(), end, x);
    if (ec != std::errc() || ptr != end || !(x == x) || x - x != 0) {
      fail(name, " expects a finite number, got '", *value, "'");
    }
    return x;
  }

  // The comma-separated items of a flag's value, e.g. "a.jsonl,b.jsonl"; an empty item is an
  // error that names the flag and `example`.
  std::optional<std::vector<std::string>> string_list(std::string_view name,
                                                      std::string_view example) const {
    const auto value = get(name);
    if (!value) return std::nullopt;
    std::vector<std::string> list;
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = value->find(',', start);
      list.push_back(value->substr(start, comma == std::string::npos ? comma : comma - start));
      if (list.back().empty()) {
        fail(name, " expects comma-separated ", example, ", got '", *value, "' (empty item ",
             list.size() - 1, ")");
      }
      if (comma == std::string::npos) return list;
      start = comma + 1;
    }
  }

  // A comma-separated list of integers in [minimum, maximum], e.g. "3,17,5".
  std::optional<std::vector<std::int64_t>> integer_list(std::string_view name, std::int64_t minimum,
                                                        std::int64_t maximum) const {
    const auto items = string_list(name, "integers like 3,17,5");
    if (!items) return std::nullopt;
    std::vector<std::int64_t> list;
    for (const std::string& item : *items) {
      const std::int64_t n = parse_integer(name, item);
      if (n < minimum || n > maximum) {
        fail(name, ": item ", list.size(), " is ", item, ", expected ", minimum,
             " <= value <= ", maximum);
      }
      list.push_back(n);
    }
    return list;
  }

  // Value of a flag that must be one of `choices`.
  std::optional<std::string> choice(std::string_view name,
                                    const std::vector<std::string>& choices) const {
    const auto value = get(name);
    if (!value) return std::nullopt;
    for (const std::string& c : choices)
      if (*value == c) return value;
    std::string list;
    for (std::size_t i = 0; i < choices.size(); ++i) {
      if (i > 0) list += ", ";
      list += choices[i];
    }
    fail(name, " ", *value, " is not one of: ", list);
  }

  std::string help() const {
    std::ostringstream out;
    out << "usage: rdepth " << command_ << " " << synopsis_ << "\n\n"
        << description_ << "\n\nflags:\n";
    std::size_t width = 0;
    for (const FlagSpec& f : flags_) width = std::max(width, label(f).size());
    for (const FlagSpec& f : flags_) {
      const std::string l = label(f);
      out << "  " << l << std::string(width - l.size() + 2, ' ') << f.help << "\n";
    }
    return out.str();
  }

  const std::string& command() const { return command_; }

 private:
  static std::string label(const FlagSpec& f) {
    return f.value_name.empty() ? f.name : f.name + " " + f.value_name;
  }

  const FlagSpec* find(std::string_view name) const {
    for (const FlagSpec& f : flags_)
      if (f.name == name) return &f;
    return nullptr;
  }

  void check_declared(std::string_view name) const {
    if (find(name) == nullptr)
      fail("internal error: rdepth ", command_, " asks for undeclared flag ", name);
  }

  std::int64_t parse_integer(std::string_view name, const std::string& text) const {
    std::int64_t n = 0;
    const char* begin = text.data();
    const char* end = begin + text.size();
    if (begin != end && *begin == '+') ++begin;  // from_chars accepts no '+'
    const auto [ptr, ec] = std::from_chars(begin, end, n);
    if (ec == std::errc::result_out_of_range) {
      fail(name, " ", text, " is out of range");
    }
    if (ec != std::errc() || ptr != end || begin == end) {
      fail(name, " expects an integer, got '", text, "'");
    }
    return n;
  }

  [[noreturn]] void fail_range(std::string_view name, const std::string& text, std::int64_t minimum,
                               std::int64_t maximum) const {
    if (maximum == std::numeric_limits<std::int64_t>::max() ||
        maximum == std::numeric_limits<int>::max()) {
      fail(name, " is ", text, ", expected ", name, " >= ", minimum);
    }
    fail(name, " is ", text, ", expected ", minimum, " <= ", name, " <= ", maximum);
  }

  std::string command_, synopsis_, description_;
  std::vector<FlagSpec> flags_;
  std::map<std::string, std::string> values_;
};

}  // namespace rdepth
