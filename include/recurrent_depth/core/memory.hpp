// Memory accounting for large allocations: sizes multiplied without overflow, the memory this
// process may still take (Linux: MemAvailable, bounded by a cgroup's limit), and the check that
// refuses a model load or a KV-cache growth with a clear Error before anything is allocated,
// instead of std::bad_alloc (or the OOM killer) from deep inside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>

#include <unistd.h>

#include "error.hpp"

namespace recurrent_depth {

inline constexpr std::size_t kUnknownMemory = std::numeric_limits<std::size_t>::max();

// a * b, or SIZE_MAX when the product does not fit (a size that large never fits in memory).
constexpr std::size_t saturating_product(std::size_t a, std::size_t b) {
  std::size_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? kUnknownMemory : product;
}
constexpr std::size_t saturating_sum(std::size_t a, std::size_t b) {
  std::size_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? kUnknownMemory : sum;
}

// "1.50 GiB", "12.0 MiB", "512 bytes".
inline std::string format_bytes(std::size_t bytes) {
  if (bytes == kUnknownMemory) return "more than 16 EiB";
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = double(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 6) {
    value /= 1024.0;
    ++unit;
  }
  char text[48];
  if (unit == 0)
    std::snprintf(text, sizeof text, "%zu bytes", bytes);
  else
    std::snprintf(text, sizeof text, "%.*f %s",
                  value < 10    ? 2
                  : value < 100 ? 1
                                : 0,
                  value, units[unit]);
  return text;
}

namespace detail {

// The first integer of a file ("max" or anything else unreadable: kUnknownMemory).
inline std::size_t read_size_file(const char* path) {
  std::ifstream in(path);
  unsigned long long value = 0;
  if (!(in >> value)) return kUnknownMemory;
  return static_cast<std::size_t>(value);
}

// /proc/meminfo's MemAvailable (memory usable without swapping, reclaimable caches included).
inline std::size_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    unsigned long long kib = 0;
    if (fields >> kib) return saturating_product(static_cast<std::size_t>(kib), 1024);
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return kUnknownMemory;
  return saturating_product(std::size_t(pages), std::size_t(page));
}

// Room left under the cgroup's memory limit (v2, else v1); kUnknownMemory without a limit.
inline std::size_t cgroup_room() {
  std::size_t limit = read_size_file("/sys/fs/cgroup/memory.max");
  std::size_t used = read_size_file("/sys/fs/cgroup/memory.current");
  if (limit == kUnknownMemory) {
    limit = read_size_file("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_size_file("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit == kUnknownMemory || used == kUnknownMemory) return kUnknownMemory;
  return used >= limit ? 0 : limit - used;
}

}  // namespace detail

// Bytes this process can still allocate without swapping: the machine's available memory, or
// less under a cgroup's limit. kUnknownMemory where neither can be read.
inline std::size_t available_memory_bytes() {
  const std::size_t machine = detail::mem_available(), cgroup = detail::cgroup_room();
  return machine < cgroup ? machine : cgroup;
}

// Allocations at least this large are checked against available_memory_bytes() (reading
// /proc costs microseconds: small ones are not worth it).
inline constexpr std::size_t kCheckedAllocationBytes = std::size_t(64) << 20;

// Fails, before allocating, when `needed` bytes exceed `limit` (0: the memory available now).
// `what` says what would be allocated, e.g. "loading tiny_huginn (bf16 weights)".
inline void require_memory(std::size_t needed, std::size_t limit, std::string_view what) {
  const bool machine = limit == 0;
  if (machine && needed < kCheckedAllocationBytes) return;
  const std::size_t room = machine ? available_memory_bytes() : limit;
  if (needed <= room) return;
  if (machine)
    fail(what, ": needs ", format_bytes(needed), " of memory, the machine has ", format_bytes(room),
         " available");
  fail(what, ": needs ", format_bytes(needed), " of memory, over the limit of ",
       format_bytes(room));
}

}  // namespace recurrent_depth
