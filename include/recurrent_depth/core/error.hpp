// Error reporting: one exception type for every bad input the library detects (files, tensors,
// config fields, token ids, options). Messages name the file, tensor or field and what was
// expected.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace recurrent_depth {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds a message from any streamable parts: fail("tensor ", name, ": expected ", n, " rows").
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream message;
  (message << ... << std::forward<Parts>(parts));
  throw Error(message.str());
}

template <class... Parts>
void require(bool condition, Parts&&... parts) {
  if (!condition) fail(std::forward<Parts>(parts)...);
}

}  // namespace recurrent_depth
