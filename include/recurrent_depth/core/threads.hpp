// Thread control for the CPU kernels (OpenMP): how many threads, and a row-range partition.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace recurrent_depth {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// n <= 0 keeps the OpenMP default (all cores, or OMP_NUM_THREADS).
inline void set_num_threads(int n) {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

// Threads of the current parallel region (1 outside one).
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// This thread's share [first, last) of `count` items split evenly over the current team.
inline std::pair<std::size_t, std::size_t> thread_share(std::size_t count) {
  const auto team = static_cast<std::size_t>(team_size());
  const auto me = static_cast<std::size_t>(thread_index());
  return {count * me / team, count * (me + 1) / team};
}

}  // namespace recurrent_depth
