// A progress bar on stderr while a model's weights are read and converted: the share of the
// checkpoint's bytes read so far (Checkpoint::on_read), redrawn at each new percent.
#pragma once

#include <cstdio>
#include <string>

#include "recurrent_depth/io/checkpoint.hpp"

namespace rdepth {

class LoadProgress {
 public:
  LoadProgress(const recurrent_depth::Checkpoint& checkpoint, std::string what)
      : checkpoint_(checkpoint), total_(double(checkpoint.total_bytes())), what_(std::move(what)) {
    checkpoint.on_read(
        [this](const recurrent_depth::TensorInfo& t) { advance(double(t.bytes.size())); });
  }
  ~LoadProgress() { checkpoint_.on_read({}); }
  void advance(double bytes) {
    done_ += bytes;
    const int percent = int(100.0 * std::min(1.0, done_ / total_));
    if (percent == shown_) return;
    shown_ = percent;
    std::fprintf(stderr, "\r%s [%-40s] %3d%%", what_.c_str(),
                 std::string(percent * 40 / 100, '#').c_str(), percent);
    if (percent == 100) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  const recurrent_depth::Checkpoint& checkpoint_;
  double total_, done_ = 0.0;
  std::string what_;
  int shown_ = -1;
};

}  // namespace rdepth
