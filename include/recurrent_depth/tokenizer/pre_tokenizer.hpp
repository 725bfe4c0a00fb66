// Normalizers and pre-tokenizers of tokenizer.json, with the JavaScript library's semantics (the
// test oracle). Normalizers: null, Sequence, Prepend, Replace, NFC. Pre-tokenizers: Sequence,
// Split (Regex or String; Isolated, Removed, invert; MergedWithPrevious, MergedWithNext and
// Contiguous as the Rust library defines them), ByteLevel (with and without its own regex,
// add_prefix_space; it must come last) and Digits. Pieces stay raw UTF-8: the byte-level mapping
// happens in the BPE model, which starts from one symbol per byte.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "json_fields.hpp"
#include "nfc.hpp"
#include "regex.hpp"

namespace recurrent_depth::tokenizer {

// A tokenizer.json "pattern": {"Regex": "..."} or {"String": "..."}. `capture_string` wraps a
// String pattern in a group, as the JS library does for Split with invert false.
inline Regex compile_json_pattern(const Json& pattern, bool capture_string,
                                  const std::string& where) {
  require(pattern.is_object(), where, ": expected {\"Regex\": ...} or {\"String\": ...}");
  if (pattern.contains("Regex")) {
    require(pattern["Regex"].is_string(), where, ".Regex: expected a string");
    try {
      return Regex(translate_pattern(pattern["Regex"].get<std::string>()), where + ".Regex");
    } catch (const Error& error) {
      fail(where, ".Regex: ", error.what());
    }
  }
  require(pattern.contains("String") && pattern["String"].is_string(), where,
          ": expected {\"Regex\": ...} or {\"String\": ...}");
  const std::string literal = escape_literal(pattern["String"].get<std::string>());
  return Regex(capture_string ? "(" + literal + ")" : literal, where + ".String");
}

// ---- Normalizers
// ---------------------------------------------------------------------------------

class Normalizer {
 public:
  static std::unique_ptr<Normalizer> create(const Json& config, const std::string& where) {
    if (config.is_null()) return nullptr;
    const std::string type = json_string(config, "type", where);
    auto normalizer = std::unique_ptr<Normalizer>(new Normalizer());
    if (type == "Sequence") {
      const Json& list = json_field(config, "normalizers", where);
      require(list.is_array(), where, ".normalizers: expected an array");
      for (std::size_t i = 0; i < list.size(); ++i) {
        auto inner = create(list[i], where + ".normalizers[" + std::to_string(i) + "]");
        if (!inner) continue;
        for (Step& step : inner->steps_) normalizer->steps_.push_back(std::move(step));
      }
      return normalizer;
    }
    Step step;
    if (type == "Prepend") {
      step.kind = Step::Kind::prepend;
      step.text = json_string(config, "prepend", where);
    } else if (type == "Replace") {
      step.kind = Step::Kind::replace;
      step.pattern.emplace(
          compile_json_pattern(json_field(config, "pattern", where), false, where + ".pattern"));
      step.text = json_string(config, "content", where);
    } else if (type == "NFC") {
      step.kind = Step::Kind::nfc;
    } else {
      fail(where, ".type: unsupported normalizer \"", type,
           "\" (supported: Sequence, Prepend, Replace, NFC)");
    }
    normalizer->steps_.push_back(std::move(step));
    return normalizer;
  }

  std::string normalize(std::string text) const {
    for (const Step& step : steps_) text = step.apply(text);
    return text;
  }

 private:
  struct Step {
    enum class Kind { prepend, replace, nfc } kind = Kind::prepend;
    std::string text;              // prepended text, or the replacement
    std::optional<Regex> pattern;  // Replace only

    std::string apply(const std::string& input) const {
      switch (kind) {
        case Kind::prepend:
          return text + input;
        case Kind::nfc:
          return nfc(input);
        case Kind::replace:
          break;
      }
      std::string out;
      Regex::Match match;
      std::size_t copied = 0;
      for (std::size_t start = 0; start <= input.size() && pattern->search(input, start, match);) {
        out.append(input, copied, match.begin - copied);
        out += text;
        copied = match.end;
        start = match.end > match.begin ? match.end : Regex::advance(input, match.end);
      }
      out.append(input, copied);
      return out;
    }
  };

  std::vector<Step> steps_;
};

// ---- Pre-tokenizers
// ------------------------------------------------------------------------------

enum class SplitBehavior { isolated, removed, merged_with_previous, merged_with_next, contiguous };

class PreTokenizer {
 public:
  // Builds the chain from tokenizer.json's "pre_tokenizer" (null gives an empty chain).
  static PreTokenizer create(const Json& config, const std::string& where) {
    PreTokenizer chain;
    if (!config.is_null()) chain.add(config, where);
    return chain;
  }

  // Splits `text` into pieces (raw UTF-8).
  std::vector<std::string> split(std::string_view text) const {
    std::vector<std::string> pieces{std::string(text)}, next;
    for (const Step& step : steps_) {
      next.clear();
      for (const std::string& piece : pieces) step.apply(piece, next);
      pieces.swap(next);
    }
    return pieces;
  }

  // True when the chain ends in ByteLevel: the model then starts from one symbol per byte.
  bool byte_level() const { return byte_level_; }

 private:
  struct Step {
    enum class Kind { split, byte_level, digits } kind = Kind::split;
    std::optional<Regex> pattern;
    SplitBehavior behavior = SplitBehavior::isolated;
    bool invert = false;
    bool add_prefix_space = false;

    void apply(const std::string& text, std::vector<std::string>& out) const {
      std::string prefixed;
      std::string_view input = text;
      if (kind == Kind::byte_level) {
        if (add_prefix_space && (text.empty() || text[0] != ' ')) input = prefixed = " " + text;
        if (!pattern) {
          out.emplace_back(input);
          return;
        }
      }
      Regex::Match match;
      const bool keep_matches_only = kind != Kind::split || invert;
      const bool js_split = kind == Kind::split && behavior == SplitBehavior::removed;
      std::size_t last_end = 0;  // end of the previous match (start of the pending gap)
      // Start of the text not yet emitted; for Contiguous the start of the current run of matches.
      std::size_t gap_start_for_merge =
          behavior == SplitBehavior::contiguous ? std::string::npos : 0;
      for (std::size_t start = 0;
           start <= input.size() && pattern->search(input, start, match, js_split);) {
        const bool empty = match.end == match.begin;
        const std::size_t next_start = empty ? Regex::advance(input, match.end) : match.end;
        if (keep_matches_only) {
          if (!empty) out.emplace_back(input.substr(match.begin, match.end - match.begin));
        } else if (js_split) {  // String.prototype.split: gaps and captured groups, no empties
          if (empty && match.begin == last_end) {
            start = next_start;
            continue;
          }
          if (match.begin >= input.size()) break;
          push_nonempty(out, input.substr(last_end, match.begin - last_end));
          for (const auto& [begin, end] : match.groups)
            if (begin != std::string::npos) push_nonempty(out, input.substr(begin, end - begin));
          last_end = match.end;
        } else if (!empty) {
          apply_rust_behavior(input, match, last_end, gap_start_for_merge, out);
          last_end = match.end;
        }
        start = next_start;
      }
      if (keep_matches_only) return;
      if (js_split || behavior == SplitBehavior::isolated) {
        push_nonempty(out, input.substr(last_end));
      } else {
        finish_rust_behavior(input, last_end, gap_start_for_merge, out);
      }
    }

    static void push_nonempty(std::vector<std::string>& out, std::string_view piece) {
      if (!piece.empty()) out.emplace_back(piece);
    }

    // Isolated / MergedWithPrevious / MergedWithNext / Contiguous for one non-empty match.
    // `pending` is where the text not yet emitted starts (it may include an earlier match).
    void apply_rust_behavior(std::string_view input, const Regex::Match& match,
                             std::size_t last_end, std::size_t& pending,
                             std::vector<std::string>& out) const {
      const std::string_view gap = input.substr(last_end, match.begin - last_end);
      switch (behavior) {
        case SplitBehavior::isolated:
          push_nonempty(out, gap);
          out.emplace_back(input.substr(match.begin, match.end - match.begin));
          pending = match.end;
          break;
        case SplitBehavior::merged_with_previous:  // the match ends the piece before it
          push_nonempty(out, input.substr(pending, match.end - pending));
          pending = match.end;
          break;
        case SplitBehavior::merged_with_next:  // the match starts the next piece
          push_nonempty(out, input.substr(pending, match.begin - pending));
          pending = match.begin;
          break;
        case SplitBehavior::contiguous:  // adjacent matches form one piece
          if (pending == std::string::npos || match.begin != last_end) {
            if (pending != std::string::npos)
              out.emplace_back(input.substr(pending, last_end - pending));
            push_nonempty(out, gap);
            pending = match.begin;
          }
          break;
        case SplitBehavior::removed:
          break;
      }
    }

    void finish_rust_behavior(std::string_view input, std::size_t last_end, std::size_t pending,
                              std::vector<std::string>& out) const {
      if (behavior == SplitBehavior::contiguous) {
        if (pending != std::string::npos)
          out.emplace_back(input.substr(pending, last_end - pending));
        pending = last_end;
      }
      push_nonempty(out, input.substr(pending));
    }
  };

  void add(const Json& config, const std::string& where) {
    const std::string type = json_string(config, "type", where);
    require(!byte_level_, where, ": a ", type,
            " pre-tokenizer after ByteLevel is not supported (ByteLevel must be last)");
    if (type == "Sequence") {
      const Json& list = json_field(config, "pretokenizers", where);
      require(list.is_array(), where, ".pretokenizers: expected an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        if (!list[i].is_null()) add(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      return;
    }
    Step step;
    if (type == "Split") {
      step.invert = json_bool(config, "invert", false, where);
      step.pattern.emplace(compile_json_pattern(json_field(config, "pattern", where), !step.invert,
                                                where + ".pattern"));
      const std::string behavior = json_string(config, "behavior", where);
      if (behavior == "Isolated")
        step.behavior = SplitBehavior::isolated;
      else if (behavior == "Removed")
        step.behavior = SplitBehavior::removed;
      else if (behavior == "MergedWithPrevious")
        step.behavior = SplitBehavior::merged_with_previous;
      else if (behavior == "MergedWithNext")
        step.behavior = SplitBehavior::merged_with_next;
      else if (behavior == "Contiguous")
        step.behavior = SplitBehavior::contiguous;
      else
        fail(where, ".behavior: unknown split behavior \"", behavior, "\"");
    } else if (type == "ByteLevel") {
      step.kind = Step::Kind::byte_level;
      step.add_prefix_space = json_bool(config, "add_prefix_space", false, where);
      if (json_bool(config, "use_regex", true, where)) {
        // GPT-2's pattern as the JS library writes it, with JavaScript's \s.
        const std::string js_space =
            "\\t\\n\\x0B\\f\\r "
            "\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{"
            "FEFF}";
        step.pattern.emplace("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + js_space +
                                 "\\p{L}\\p{N}]+|[" + js_space + "]+(?![^" + js_space + "])|[" +
                                 js_space + "]+",
                             where + " (ByteLevel regex)");
      }
      byte_level_ = true;
    } else if (type == "Digits") {
      step.kind = Step::Kind::digits;
      const bool individual = json_bool(config, "individual_digits", false, where);
      step.pattern.emplace(individual ? "[^0-9]+|[0-9]" : "[^0-9]+|[0-9]+", where + " (Digits)");
    } else {
      fail(where, ".type: unsupported pre-tokenizer \"", type,
           "\" (supported: Sequence, Split, ByteLevel, Digits)");
    }
    steps_.push_back(std::move(step));
  }

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace recurrent_depth::tokenizer
