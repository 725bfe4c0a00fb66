// Compiled by an outside project against recurrent_depth: checks that the headers, the C++20
// requirement and the dependencies all come through the exported target.
#include <recurrent_depth/core/dtype.hpp>

#include <cstdio>

int main() {
  namespace rd = recurrent_depth;
  struct Case {
    float in, expected;
  };
  const Case cases[] = {
      {1.5f, 1.5f},                    // exactly representable
      {-3.0f, -3.0f},                  // sign
      {1.0f + 1.0f / 256, 1.0f},       // halfway between 1 and 1 + 2^-7: ties to even (down)
      {1.0f + 3.0f / 256, 1.015625f},  // halfway, odd neighbour below: ties to even (up)
      {3.14159265f, 3.140625f},        // nearest bf16
  };
  int failures = 0;
  for (const Case& c : cases) {
    const float out = rd::to_float(rd::to_bf16(c.in));
    if (out != c.expected) {
      std::printf("bf16 round trip of %.9g gave %.9g, expected %.9g\n", c.in, out, c.expected);
      ++failures;
    }
  }
  if (rd::dtype_size(rd::DType::BF16) != 2) ++failures;
  std::printf("recurrent_depth consumer: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
