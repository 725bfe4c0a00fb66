// Aligned heap arrays for matrices and buffers: 64-byte aligned, and from 2 MiB on aligned to
// 2 MiB and (on Linux) advised to be backed by transparent huge pages before their first touch.
// The weight matrices are streamed from memory at every token: with 4 KiB pages a stream
// changes page every 4 KiB (a TLB miss, and the hardware prefetchers stop at the boundary);
// with 2 MiB pages the decode matmuls read 25-35% faster on the machine this was measured on.
// Where the kernel grants no huge pages the advice is ignored and nothing else changes.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace recurrent_depth {

inline constexpr std::size_t kAlignment = 64;
inline constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

// The alignment an array of `bytes` gets.
constexpr std::size_t alignment_for(std::size_t bytes) {
  return bytes >= kHugePageBytes ? kHugePageBytes : kAlignment;
}

struct AlignedFree {
  std::size_t alignment = kAlignment;
  void operator()(void* p) const { ::operator delete[](p, std::align_val_t{alignment}); }
};

template <class T>
using AlignedArray = std::unique_ptr<T[], AlignedFree>;

// Whether a large array is advised onto huge pages (weights and activations, allocated once) or
// left on the default pages (the KV cache, which grows during a prompt: on a machine with
// fragmented memory, the first touch of an advised huge page can wait on the kernel compacting
// memory; huginn-mini's prompts ran 5x slower with their KV cache advised).
enum class PageAdvice { huge_pages, default_pages };

// An uninitialised array of `count` T (T trivially constructible).
template <class T>
AlignedArray<T> allocate_aligned(std::size_t count, PageAdvice advice = PageAdvice::huge_pages) {
  const std::size_t bytes = count * sizeof(T), alignment = alignment_for(bytes);
  void* p = ::operator new[](bytes, std::align_val_t{alignment});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (alignment == kHugePageBytes && advice == PageAdvice::huge_pages)  // advice only
    (void)madvise(p, bytes / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE);
#endif
  return AlignedArray<T>(static_cast<T*>(p), AlignedFree{alignment});
}

}  // namespace recurrent_depth
