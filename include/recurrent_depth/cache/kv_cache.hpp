// The KV cache of one sequence, its entries in the backend's Memory: one slot per block invocation
// (prelude block b -> slot b; core iteration i, layer j -> n_prelude + n_core * i + j; coda block c
// -> -(c + 1)), stored (in the rule's KvFormat) and looked up by a CacheRule. Attention reads a
// slot through view(): the entries it holds or, under latest-m4 with tokens missing there, the
// entries that stand in for them. A KvCacheLimit bounds its size.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cache_rule.hpp"
#include "kv_slot.hpp"

namespace recurrent_depth {

// A bound on one sequence's KV cache (0: none): the model refuses, before it writes anything, a
// forward that could take the cache past either bound, so the session stays usable.
struct KvCacheLimit {
  std::size_t tokens = 0;  // positions the cache may hold
  std::size_t bytes = 0;   // bytes() may reach at most this
};

template <class Memory = HostMemory>
class BasicKvCache {
 public:
  using Slot = BasicKvSlot<Memory>;

  BasicKvCache() = default;
  // Entries in the rule's format (float32 when it names none).
  explicit BasicKvCache(std::size_t width, CacheRule rule = {}, KvCacheLimit limit = {})
      : width_(width), rule_(with_format(rule)), limit_(limit) {}

  // Tokens the cache holds (positions 0 .. length()-1); the next forward starts here.
  std::size_t length() const { return length_; }
  std::size_t width() const { return width_; }
  KvFormat format() const { return rule_.format.value_or(KvFormat::f32); }
  const CacheRule& rule() const { return rule_; }
  const KvCacheLimit& limit() const { return limit_; }
  void set_limit(KvCacheLimit limit) { limit_ = limit; }

  // Stores the entries of block invocation `slot` for positions first .. first + k.rows - 1.
  void write(int slot, std::size_t first, ConstMatrixView<float> k, ConstMatrixView<float> v) {
    storage(rule_.storage_slot(slot)).write(first, k, v);
  }

  // The entries attention at block invocation `slot` sees when the sequence has `seen` positions.
  KvView view(int slot, std::size_t seen) {
    const int id = rule_.storage_slot(slot);
    const Slot& own = storage(id);
    if (!rule_.latest_same_layer || own.entries() == seen) {
      KvView entries = own.view();
      entries.positions = Memory::stage(entries.positions, staged_positions_);
      return entries;
    }
    return gather_latest(id, seen);
  }

  // Raw storage slot (after the rule's mapping), created on first use.
  Slot& storage(int id) {
    const std::size_t index = index_of(id);
    if (index >= slots_.size()) slots_.resize(index + 1);
    if (!slots_[index]) slots_[index] = std::make_unique<Slot>(width_, format());
    return *slots_[index];
  }
  const Slot* find(int id) const {
    const std::size_t index = index_of(id);
    return index < slots_.size() ? slots_[index].get() : nullptr;
  }
  std::size_t slot_count() const {
    return std::size_t(
        std::count_if(slots_.begin(), slots_.end(), [](const auto& s) { return s != nullptr; }));
  }

  // Called by the model once a forward over positions [length, length + count) has finished.
  void commit(std::size_t count) { length_ += count; }

  // Forgets every position >= length (for rolling back rejected speculative tokens).
  void truncate(std::size_t length) {
    require(length <= length_, "KV cache: cannot truncate to ", length, " tokens, it holds ",
            length_);
    for (const auto& slot : slots_)
      if (slot) slot->truncate(length);
    length_ = length;
  }
  void clear() {
    slots_.clear();
    length_ = 0;
  }

  // Empties the cache for a new sequence stored by `rule` within `limit`. Under the same rule
  // its slots keep their memory (a server's next request reuses a finished one's cache without
  // allocating and faulting it in again); under another rule they go.
  void restart(CacheRule rule, KvCacheLimit limit = {}) {
    rule = with_format(rule);
    if (rule == rule_)
      truncate(0);
    else
      clear();
    rule_ = rule;
    limit_ = limit;
  }

  std::size_t bytes() const {
    std::size_t total = 0;
    for (const auto& slot : slots_)
      if (slot) total += slot->bytes();
    return total;
  }

 private:
  // The rule with its format named (float32 when it names none).
  static CacheRule with_format(CacheRule rule) {
    rule.format = rule.format.value_or(KvFormat::f32);
    return rule;
  }

  // Slot ids 0, 1, 2, ... (prelude and core) and -1, -2, ... (coda) at indices 0, 2, 4, ... and
  // 1, 3, .... (Not a std::map: Debian 12's hipcc crashes compiling std::map of a move-only value
  // under C++20.)
  static std::size_t index_of(int id) {
    return id >= 0 ? 2 * std::size_t(id) : 2 * std::size_t(-(id + 1)) + 1;
  }

  // latest-m4 (the reference's rule): at a core slot, each position is read from the deepest slot
  // s' <= id of the same core layer that holds it; at a prelude or coda slot, from that slot or
  // else slot 0. Positions found nowhere are left out.
  const Slot* latest_holder(int id, std::size_t position) const {
    if (id < 2) {
      for (int candidate : {id, 0})
        if (const Slot* slot = find(candidate); slot && slot->has(position)) return slot;
      return nullptr;
    }
    for (int candidate = id; candidate >= 0; --candidate)
      if (const Slot* slot = find(candidate);
          slot && CacheRule::same_layer(candidate, id) && slot->has(position))
        return slot;
    return nullptr;
  }

  // Gathers the keys into rows [0, n) of gathered_ and the values into rows [n, 2n), in one
  // Memory::gather (one kernel on a GPU).
  KvView gather_latest(int id, std::size_t seen) {
    gathered_positions_.clear();
    gather_sources_.assign(2 * seen, nullptr);  // keys in [0, seen), values in [seen, 2 seen)
    std::size_t rows = 0;
    for (std::size_t position = 0; position < seen; ++position) {
      const Slot* source = latest_holder(id, position);
      if (!source) continue;
      gathered_positions_.push_back(static_cast<std::int32_t>(position));
      gather_sources_[rows] = source->key_words(position);
      gather_sources_[seen + rows] = source->value_words(position);
      ++rows;
    }
    // The values follow the keys at once.
    std::copy(gather_sources_.begin() + std::ptrdiff_t(seen),
              gather_sources_.begin() + std::ptrdiff_t(seen + rows),
              gather_sources_.begin() + std::ptrdiff_t(rows));
    gather_sources_.resize(2 * rows);
    gathered_.resize(2 * rows, kv_words_per_row(width_, format()));
    Memory::gather(gather_sources_, gathered_.view(), staged_sources_);
    const bool dense = rows == seen;
    return {format(), width_, gathered_.view().middle_rows(0, rows),
            gathered_.view().middle_rows(rows, rows),
            dense ? std::span<const std::int32_t>()
                  : Memory::stage(std::span<const std::int32_t>(gathered_positions_),
                                  staged_positions_)};
  }

  std::size_t width_ = 0;
  std::size_t length_ = 0;
  CacheRule rule_;
  KvCacheLimit limit_;
  std::vector<std::unique_ptr<Slot>> slots_;  // by index_of(id); null: not used yet
  typename Memory::Matrix gathered_;          // [2 n, words per row]: n keys, then their n values
  std::vector<std::int32_t> gathered_positions_;
  std::vector<const float*> gather_sources_;  // addresses of the key rows, then the value rows
  typename Memory::template Array<const float*> staged_sources_;
  typename Memory::template Array<std::int32_t> staged_positions_;  // key positions in Memory
};

using KvCache = BasicKvCache<>;

}  // namespace recurrent_depth
