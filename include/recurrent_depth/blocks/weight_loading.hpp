// Reading block parameters from a checkpoint with their shapes checked: matmul weights into the
// backend's packed format for the chosen precision, small vectors (norms, biases) as float. The
// shape is checked before anything is allocated: a config that does not match its checkpoint
// (say a huge intermediate_size) is an Error, not a huge allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../io/checkpoint.hpp"

namespace recurrent_depth {

template <class Backend, class Precision>
using WeightsOf = typename Backend::template Weights<Precision>;

template <class Backend, class Precision>
WeightsOf<Backend, Precision> load_matrix(const Checkpoint& checkpoint, const std::string& name,
                                          std::size_t rows, std::size_t cols) {
  using Source = typename Precision::Source;
  checkpoint.at(name, {std::int64_t(rows), std::int64_t(cols)});  // before the allocation
  std::vector<Source> values(rows * cols);
  checkpoint.read<Source>(name, {std::int64_t(rows), std::int64_t(cols)}, values);
  return WeightsOf<Backend, Precision>::from_rows(std::span<const Source>(values), rows, cols);
}

inline std::vector<float> load_vector(const Checkpoint& checkpoint, const std::string& name,
                                      std::initializer_list<std::int64_t> shape) {
  checkpoint.at(name, shape);  // before the allocation
  std::size_t count = 1;
  for (std::int64_t d : shape) count *= static_cast<std::size_t>(d);
  std::vector<float> values(count);
  checkpoint.read<float>(name, shape, values);
  return values;
}

}  // namespace recurrent_depth
