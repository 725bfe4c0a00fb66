// Regular expressions for the tokenizer through PCRE2 (UTF + UCP, JIT when available), and the
// translation of tokenizer.json patterns (Oniguruma syntax, written for the Rust library) into
// PCRE2 with the meaning the JavaScript library (the test oracle) gives them: \s is White_Space,
// \d is Nd, \w and \b use JS's Unicode word characters, (?i:...) folds ASCII letters only,
// `x{n,m}+` repeats the group (Oniguruma) instead of being possessive, `++` is a plain `+`.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"

namespace recurrent_depth::tokenizer {

namespace detail {

inline constexpr std::string_view kWordChars =
    "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}";
inline constexpr std::string_view kWordCharsInClass = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";

inline std::string word_class(bool negated) {
  return std::string(negated ? "[^" : "[") + std::string(kWordChars) + "]";
}

inline std::string word_boundary(bool negated) {
  const std::string w = word_class(false);
  return negated ? "(?:(?<!" + w + ")(?!" + w + ")|(?<=" + w + ")(?=" + w + "))"
                 : "(?:(?<!" + w + ")(?=" + w + ")|(?<=" + w + ")(?!" + w + "))";
}

inline bool is_ascii_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}

// Escapes outside character classes; returns false when `letter` has no rewrite.
inline bool rewrite_escape(char letter, std::string& out) {
  switch (letter) {
    case 's':
      out += "\\p{White_Space}";
      return true;
    case 'S':
      out += "\\P{White_Space}";
      return true;
    case 'd':
      out += "\\p{Nd}";
      return true;
    case 'D':
      out += "\\P{Nd}";
      return true;
    case 'w':
      out += word_class(false);
      return true;
    case 'W':
      out += word_class(true);
      return true;
    case 'b':
      out += word_boundary(false);
      return true;
    case 'B':
      out += word_boundary(true);
      return true;
    case 'h':
      out += "[0-9A-Fa-f]";
      return true;
    case 'H':
      out += "[^0-9A-Fa-f]";
      return true;
    case 'A':
      out += "(?<![\\s\\S])";
      return true;
    case 'z':
      out += "(?![\\s\\S])";
      return true;
    case 'Z':
      out += "(?=\\n?(?![\\s\\S]))";
      return true;
    case 'a':
      out += "\\x07";
      return true;
    case 'e':
      out += "\\x1B";
      return true;
    case 'G':
      return true;  // dropped, as the JS library does
    default:
      return false;
  }
}

// Escapes inside character classes.
inline bool rewrite_class_escape(char letter, std::string& out) {
  switch (letter) {
    case 's':
      out += "\\p{White_Space}";
      return true;
    case 'S':
      out += "\\P{White_Space}";
      return true;
    case 'd':
      out += "\\p{Nd}";
      return true;
    case 'D':
      out += "\\P{Nd}";
      return true;
    case 'w':
      out += kWordCharsInClass;
      return true;
    case 'h':
      out += "0-9A-Fa-f";
      return true;
    case 'a':
      out += "\\x07";
      return true;
    case 'e':
      out += "\\x1B";
      return true;
    default:
      return false;
  }
}

// Copies a braced or fixed-width escape (\p{..}, \x{..}, \xHH, \uHHHH, \cX) starting at
// pattern[i] (a backslash) into out; returns the index after it, or i when there is none.
inline std::size_t copy_code_escape(std::string_view pattern, std::size_t i, std::string& out) {
  const char kind = i + 1 < pattern.size() ? pattern[i + 1] : '\0';
  if ((kind == 'p' || kind == 'P' || kind == 'x' || kind == 'u') && i + 2 < pattern.size() &&
      pattern[i + 2] == '{') {
    const std::size_t close = pattern.find('}', i + 3);
    if (close == std::string_view::npos) return i;
    const std::string_view body = pattern.substr(i + 3, close - i - 3);
    if (kind == 'u')
      out += "\\x{" + std::string(body) + "}";
    else if (body == "Word")
      out += kind == 'p' ? std::string(kWordChars) : std::string("\\P{Xwd}");
    else
      out += std::string(pattern.substr(i, close + 1 - i));
    return close + 1;
  }
  if (kind == 'u' && i + 6 <= pattern.size()) {
    out += "\\x{" + std::string(pattern.substr(i + 2, 4)) + "}";
    return i + 6;
  }
  if (kind == 'x' || kind == 'c') {
    const std::size_t length = kind == 'x' ? 4 : 3;
    out += std::string(pattern.substr(i, length));
    return i + length;
  }
  return i;
}

}  // namespace detail

// Translates a tokenizer.json regex (Oniguruma) into a PCRE2 pattern with the JS oracle's meaning.
inline std::string translate_pattern(std::string_view pattern) {
  using namespace detail;
  std::string out;
  struct OpenGroup {
    bool fold;
    std::size_t out_start;
  };
  std::vector<OpenGroup> open_groups;  // ASCII case folding and output offset of enclosing groups
  bool fold = false;
  std::size_t atom_start = std::string::npos;
  bool last_was_quantifier = false;
  for (std::size_t i = 0; i < pattern.size();) {
    const char c = pattern[i];
    if (c == '\\') {
      if (i + 1 >= pattern.size()) {
        out += c;
        break;
      }
      atom_start = out.size();
      last_was_quantifier = false;
      const std::size_t after = copy_code_escape(pattern, i, out);
      if (after != i) {
        i = after;
        continue;
      }
      const char letter = pattern[i + 1];
      i += 2;
      if (rewrite_escape(letter, out)) continue;
      out += '\\';
      out += letter;
      continue;
    }
    if (c == '[') {  // character class: copy it, rewriting the escapes and POSIX classes
      atom_start = out.size();
      last_was_quantifier = false;
      if (fold) out += "(?i:";
      out += '[';
      std::size_t j = i + 1;
      if (j < pattern.size() && pattern[j] == '^') out += pattern[j++];
      if (j < pattern.size() && pattern[j] == ']') {
        out += "\\]";
        ++j;
      }
      int depth = 1;
      while (j < pattern.size() && depth > 0) {
        const char d = pattern[j];
        if (d == '\\' && j + 1 < pattern.size()) {
          const std::size_t after = copy_code_escape(pattern, j, out);
          if (after != j) {
            j = after;
            continue;
          }
          const char letter = pattern[j + 1];
          if (letter == 'W' || letter == 'H')
            fail("regex: \\", letter, " inside a character class is not supported");
          if (!rewrite_class_escape(letter, out)) {
            out += '\\';
            out += letter;
          }
          j += 2;
        } else if (d == '[' && pattern.substr(j, 2) == "[:") {
          const std::size_t close = pattern.find(":]", j + 2);
          require(close != std::string_view::npos, "regex: unterminated POSIX class at offset ", j);
          std::string_view name = pattern.substr(j + 2, close - j - 2);
          const bool negated = !name.empty() && name[0] == '^';
          if (negated) name.remove_prefix(1);
          require(!negated, "regex: negated POSIX class [:^", name, ":] is not supported");
          if (name == "alpha")
            out += "\\p{Alphabetic}";
          else if (name == "alnum")
            out += "\\p{Alphabetic}\\p{Nd}";
          else if (name == "digit")
            out += "\\p{Nd}";
          else if (name == "space")
            out += "\\p{White_Space}";
          else if (name == "punct")
            out += "\\p{P}\\p{S}";
          else if (name == "word")
            out += kWordCharsInClass;
          else if (name == "xdigit")
            out += "0-9A-Fa-f";
          else if (name == "lower")
            out += "\\p{Lowercase}";
          else if (name == "upper")
            out += "\\p{Uppercase}";
          else if (name == "cntrl")
            out += "\\p{Cc}";
          else if (name == "blank")
            out += "\\t\\p{Zs}";
          else
            fail("regex: unsupported POSIX class [:", name, ":]");
          j = close + 2;
        } else if (d == '[') {
          fail("regex: nested character classes are not supported (offset ", j, ")");
        } else {
          if (d == ']') --depth;
          if (depth > 0) out += d;
          ++j;
        }
      }
      require(depth == 0, "regex: unterminated character class at offset ", i);
      out += ']';
      if (fold) out += ')';
      i = j;
      continue;
    }
    switch (c) {
      case ']':
        atom_start = out.size();
        out += "\\]";
        last_was_quantifier = false;
        ++i;
        continue;
      case '.':
        atom_start = out.size();
        out += "[^\\n]";
        last_was_quantifier = false;
        ++i;
        continue;
      case '^':
        atom_start = out.size();
        out += "(?:(?<![\\s\\S])|(?<=\\n))";
        ++i;
        continue;
      case '$':
        atom_start = out.size();
        out += "(?:(?=\\n)|(?![\\s\\S]))";
        ++i;
        continue;
      case '(': {
        open_groups.push_back({fold, out.size()});
        if (pattern.substr(i, 4) == "(?i:") {
          fold = true;
          out += "(?:";
          i += 4;
        } else if (pattern.substr(i, 3) == "(?>") {
          out += "(?:";
          i += 3;
        } else {
          out += '(';
          ++i;
        }
        last_was_quantifier = false;
        atom_start = std::string::npos;
        continue;
      }
      case ')': {
        out += ')';
        ++i;
        // The whole group is the atom that a following quantifier applies to.
        atom_start = std::string::npos;
        if (!open_groups.empty()) {
          fold = open_groups.back().fold;
          atom_start = open_groups.back().out_start;
          open_groups.pop_back();
        }
        last_was_quantifier = false;
        continue;
      }
      case '|':
        out += '|';
        atom_start = std::string::npos;
        last_was_quantifier = false;
        ++i;
        continue;
      case '{': {
        std::size_t j = i + 1;
        while (j < pattern.size() && (is_ascii_digit(pattern[j]) || pattern[j] == ',')) ++j;
        const std::string_view body = pattern.substr(i + 1, j - i - 1);
        const bool quantifier = j < pattern.size() && pattern[j] == '}' && !body.empty() &&
                                body != "," && atom_start != std::string::npos;
        if (!quantifier) {
          atom_start = out.size();
          out += "\\{";
          ++i;
          last_was_quantifier = false;
          continue;
        }
        std::string bounds(body);
        if (bounds[0] == ',') bounds.insert(bounds.begin(), '0');
        i = j + 1;
        if (i < pattern.size() && (pattern[i] == '+' || pattern[i] == '*')) {
          out = out.substr(0, atom_start) + "(?:" + out.substr(atom_start) + "{" + bounds + "})" +
                pattern[i];
          ++i;
        } else {
          out += "{" + bounds + "}";
        }
        last_was_quantifier = true;
        continue;
      }
      case '}':
        atom_start = out.size();
        out += "\\}";
        last_was_quantifier = false;
        ++i;
        continue;
      case '+':
        if (!last_was_quantifier) out += '+';
        last_was_quantifier = true;
        ++i;
        continue;
      case '*':
      case '?':
        out += c;
        last_was_quantifier = true;
        ++i;
        continue;
      default:
        atom_start = out.size();
        last_was_quantifier = false;
        if (fold && is_ascii_letter(c)) {
          const char lower = static_cast<char>(c | 0x20);
          out += std::string("[") + lower + static_cast<char>(lower - 32) + "]";
        } else {
          out += c;
        }
        ++i;
    }
  }
  return out;
}

// A compiled PCRE2 pattern. Matching is thread-safe: each thread has its own match data.
class Regex {
 public:
  // `what` names the pattern's origin (file and field) for error messages.
  Regex(const std::string& pcre2_pattern, const std::string& what) : what_(what) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()),
                              pcre2_pattern.size(), PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK,
                              &error_code, &error_offset, nullptr));
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      fail(what, ": invalid regex (", reinterpret_cast<const char*>(message), " at offset ",
           error_offset, " of the translated pattern \"", pcre2_pattern, "\")");
    }
    jit_ = pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE) == 0;
    pcre2_pattern_info(code_.get(), PCRE2_INFO_CAPTURECOUNT, &capture_count_);
  }

  struct Match {
    std::size_t begin = 0, end = 0;
    std::vector<std::pair<std::size_t, std::size_t>> groups;  // npos begin: group did not take part
  };

  // First match at or after `start` in `text` (valid UTF-8); false when there is none.
  bool search(std::string_view text, std::size_t start, Match& match,
              bool with_groups = false) const {
    pcre2_match_data* match_data = thread_match_data();
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const int rc =
        jit_ ? pcre2_jit_match(code_.get(), subject, text.size(), start, 0, match_data, nullptr)
             : pcre2_match(code_.get(), subject, text.size(), start, PCRE2_NO_UTF_CHECK, match_data,
                           nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      fail(what_, ": matching a text of ", text.size(), " bytes from offset ", start, " failed (",
           reinterpret_cast<const char*>(message), ")");
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
    match.begin = ovector[0];
    match.end = ovector[1];
    match.groups.clear();
    if (with_groups) {
      for (uint32_t g = 1; g <= capture_count_; ++g) {
        const bool set = g < static_cast<uint32_t>(rc) && ovector[2 * g] != PCRE2_UNSET;
        match.groups.emplace_back(set ? ovector[2 * g] : std::string::npos,
                                  set ? ovector[2 * g + 1] : 0);
      }
    }
    return true;
  }

  // Index after the code point at text[pos] (JS advances empty matches by a code point).
  static std::size_t advance(std::string_view text, std::size_t pos) {
    ++pos;
    while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    return pos;
  }

 private:
  struct CodeDeleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  };
  struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
  };
  static pcre2_match_data* thread_match_data() {
    thread_local std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
        pcre2_match_data_create(256, nullptr));
    return data.get();
  }
  std::string what_;
  std::unique_ptr<pcre2_code, CodeDeleter> code_;
  bool jit_ = false;
  uint32_t capture_count_ = 0;
};

// Escapes a literal string for use inside a PCRE2 pattern.
inline std::string escape_literal(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (std::string_view(".*+?^${}()|[]\\/-#").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace recurrent_depth::tokenizer
