// MappedFile: a move-only, read-only memory mapping of a whole file (POSIX mmap). Checkpoint
// weights are served straight from the page cache; nothing is copied until conversion.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <utility>

#include "recurrent_depth/core/error.hpp"

namespace recurrent_depth {

class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept
      : path_(std::move(other.path_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      path_ = std::move(other.path_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  // Maps the whole file read-only. A 0-byte file gives an empty span and no mapping.
  static MappedFile open(const std::filesystem::path& path) {
    MappedFile file;
    file.path_ = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open ", path.string(), ": ", std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int err = errno;
      ::close(fd);
      fail("cannot stat ", path.string(), ": ", std::strerror(err));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd);
      fail("cannot map ", path.string(), ": not a regular file");
    }
    const auto size = static_cast<std::size_t>(info.st_size);
    if (size > 0) {
      void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        fail("cannot map ", path.string(), ": ", std::strerror(err));
      }
      file.data_ = data;
      file.size_ = size;
    }
    ::close(fd);  // the mapping keeps the file alive
    return file;
  }

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }

  // Drops the pages wholly inside `range` (a part of this mapping) from the process's resident
  // memory; they are read again from the file if touched. Loading converts each tensor once, so
  // releasing it afterwards keeps the peak near the converted size. Outside the mapping: nothing.
  void release(std::span<const std::byte> range) const noexcept {
    const auto begin = reinterpret_cast<std::uintptr_t>(range.data());
    const auto end = begin + range.size();
    const auto base = reinterpret_cast<std::uintptr_t>(data_);
    if (data_ == nullptr || begin < base || end > base + size_) return;
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const std::uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::filesystem::path path_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace recurrent_depth
