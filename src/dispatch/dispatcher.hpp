// The scheduling core of parallel processing: which fetched record may start
// now, given the ordering mode, the in-flight limits and retry holds.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kc/types.hpp"

namespace kc::detail {

/// What may run in parallel (kc/types.hpp).
using Ordering = kc::Ordering;

/// Limits of a Dispatcher. Validated by the constructor.
struct DispatcherConfig {
  Ordering ordering = Ordering::key;
  std::size_t max_in_flight = 64;                 ///< records started and not finished, all partitions (>= 1)
  std::size_t max_in_flight_per_partition = 64;   ///< the same for one partition (>= 1)
  std::size_t max_buffered_per_partition = 1000;  ///< queued + in flight above this: pause (>= 1)
  std::size_t resume_below = 500;                 ///< paused and below this: resume (1..max_buffered)
  /// Hash of key bytes; nullptr means std::hash. A seam for tests that
  /// force collisions: keys are told apart by their bytes whatever it returns.
  std::uint64_t (*key_hash)(std::string_view) = nullptr;
};

/// A partition as the dispatcher knows it: a slot and the generation of that
/// slot. Handed out by Dispatcher::assign(); a revoked partition's id never
/// becomes valid again, so late results for it are recognised.
struct PartitionId {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  friend bool operator==(const PartitionId&, const PartitionId&) = default;
};

/// A record that may start now.
struct Dispatch {
  PartitionId partition;
  std::int64_t offset = 0;
  std::uint32_t attempt = 1;  ///< 1, then + 1 for each hold() of this record
};

/// Decides which offered records may start, in which order, and when the
/// poll loop should pause or resume fetching a partition.
///
/// Threads: not thread-safe and starts no threads. Owned by the poll thread,
/// which calls every member; workers report results to that thread, which
/// then calls complete()/hold(). Nothing blocks.
///
/// Ordering: records of one partition are offered in increasing offset
/// order. In key mode, keys are compared by their bytes within one partition
/// (the same key in two partitions is two keys); a hash only finds the key,
/// so two keys with equal hashes are never mixed up nor serialised. A null
/// key is a key of its own: the null-key records of a partition run one at a
/// time in offset order (as if they shared one key), in parallel with keyed
/// records; the empty key "" is a different, ordinary key.
///
/// Costs: offer O(1) amortised, next O(1) (+ O(log h) per expired hold),
/// complete/hold/release O(log n) with n the records of that partition still
/// tracked, revoke O(n). Memory is pooled: it grows to the peak number of
/// records, keys and partitions and is reused, so steady state allocates
/// nothing (std::string key buffers keep their capacity when reused).
class Dispatcher {
 public:
  using Clock = std::chrono::steady_clock;

  /// Throws kc::Error (errc::config_invalid_value) when a limit is 0 or
  /// resume_below is not in 1..max_buffered_per_partition.
  explicit Dispatcher(const DispatcherConfig& config);

  /// Starts tracking a newly assigned partition. Never fails; may allocate
  /// (once per slot, reused after revoke).
  PartitionId assign();

  /// Queues a fetched record. `key` is ignored unless the mode is key;
  /// nullopt is the null key. The bytes are copied (into a pooled buffer)
  /// while the key has records. Returns false and queues nothing when `p` is
  /// not assigned (revoked: a record fetched before the revoke) or `offset`
  /// is not greater than the last offset offered for `p` (misuse: a seek back
  /// is not supported; retries go through hold()).
  bool offer(PartitionId p, std::int64_t offset, std::optional<std::string_view> key = std::nullopt);

  /// The next record that may start now, or nullopt. First makes the holds
  /// due at `now` eligible. The record counts as in flight until complete()
  /// or hold(). Partitions, and keys within a partition, take turns.
  std::optional<Dispatch> next(Clock::time_point now);

  /// The record in flight at (p, offset) finished: its key/partition may
  /// start the next one. Returns false when it was not in flight (unknown,
  /// queued, held, completed already) or p was revoked; a revoked
  /// partition's in-flight records still count against max_in_flight until
  /// they complete here.
  bool complete(PartitionId p, std::int64_t offset);

  /// The record in flight at (p, offset) failed and is to run again, not
  /// before `until` (or release()). It goes back to the head of its key
  /// (key mode) or partition (partition mode), which waits with it; other
  /// keys, partitions (and in unordered mode, records) flow. Returns false
  /// when it was not in flight; after a revoke it acts as complete() and
  /// returns false.
  bool hold(PartitionId p, std::int64_t offset, Clock::time_point until);

  /// Ends the hold of the record at (p, offset) now. Returns false when it
  /// is not held.
  bool release(PartitionId p, std::int64_t offset);

  /// Drops everything queued or held for p; later complete()/hold() of its
  /// in-flight records return false, and p stops being valid. Its pause
  /// state is forgotten (should_resume(p) never fires). Returns the number
  /// of records dropped, or 0 when p is not assigned.
  std::size_t revoke(PartitionId p);

  /// True once when p's queued + in-flight records exceed
  /// max_buffered_per_partition: the caller pauses fetching p. Until
  /// should_resume(p) has returned true, it returns false.
  bool should_pause(PartitionId p);

  /// True once, after should_pause(p) returned true, when p's queued +
  /// in-flight records dropped below resume_below: the caller resumes p.
  bool should_resume(PartitionId p);

  /// Whether p is paused (should_pause(p) fired, should_resume(p) not yet).
  bool paused(PartitionId p) const noexcept;

  /// The earliest hold that is not due yet, if any: when next() may have
  /// more to give without other calls (a bound for the poll timeout).
  /// May report a hold that was released early (stale); never misses one.
  std::optional<Clock::time_point> next_due() const noexcept;

  /// Records started and not finished (all partitions, revoked included).
  std::size_t in_flight() const noexcept { return in_flight_; }
  /// Records queued or held (all assigned partitions).
  std::size_t queued() const noexcept { return queued_; }
  /// p's queued + held + in-flight records (0 when not assigned).
  std::size_t buffered(PartitionId p) const noexcept;
  /// p's in-flight records (0 when not assigned).
  std::size_t in_flight(PartitionId p) const noexcept;

 private:
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};

  struct Node {  // one record, pooled
    std::int64_t offset = 0;
    std::uint32_t lane = kNone;
    std::uint32_t next = kNone;  // in its lane's queue, or in the free list
    std::uint32_t attempt = 1;
    bool in_flight = false;
  };

  // A queue of records that run one at a time (a key, a partition in
  // partition mode, a held record in unordered mode) or, for the main lane
  // in unordered mode, any number at a time.
  struct Lane {
    std::uint32_t head = kNone;
    std::uint32_t tail = kNone;
    std::uint32_t next_ready = kNone;  // in the partition's ready list, or in the free list
    std::uint32_t slot = kNone;
    std::uint32_t in_flight = 0;
    std::uint32_t hold_generation = 0;  // bumped by release and free: stale heap entries
    bool parallel = false;              // the unordered main lane
    bool listed = false;                // in the partition's ready list
    bool held = false;
    bool keyed = false;  // in the key index
    bool null_key = false;
    std::uint64_t hash = 0;
    std::string bytes;
  };

  struct Entry {  // a record of a partition, by offset
    std::int64_t offset;
    std::uint32_t node;  // kNone: completed or dropped
  };

  struct Part {
    std::uint32_t generation = 0;
    bool active = false;    // assigned
    bool draining = false;  // revoked with records still in flight
    bool listed = false;    // in the ready-partition list
    bool paused = false;
    std::uint32_t prev = kNone, next = kNone;  // ready-partition list (or free list: next)
    std::uint32_t ready_head = kNone, ready_tail = kNone;  // lanes that may start a record
    std::uint32_t main_lane = kNone;                      // partition and unordered modes
    std::size_t in_flight = 0;
    std::size_t count = 0;  // queued + held + in flight
    std::int64_t last_offset = 0;
    bool any_offered = false;
    // Records in offset order: a ring (power-of-two size) with tombstones.
    std::vector<Entry> ring;
    std::size_t ring_head = 0, ring_size = 0, ring_dead = 0;
  };

  struct HoldEntry {
    Clock::time_point until;
    std::uint32_t lane;
    std::uint32_t generation;
  };

  Part* part(PartitionId p) noexcept;
  const Part* part(PartitionId p) const noexcept;
  Entry* find(Part& pt, std::int64_t offset) noexcept;
  void ring_push(Part& pt, std::int64_t offset, std::uint32_t node);
  void ring_trim(Part& pt);

  std::uint32_t new_node();
  void free_node(std::uint32_t n) noexcept;
  std::uint32_t new_lane(std::uint32_t slot);
  void free_lane(std::uint32_t l) noexcept;
  std::uint32_t key_lane(std::uint32_t slot, std::optional<std::string_view> key);
  void index_insert(std::uint32_t lane);
  void index_erase(std::uint32_t lane) noexcept;
  void index_grow();

  bool lane_ready(const Lane& ln) const noexcept {
    return ln.head != kNone && !ln.held && (ln.parallel || ln.in_flight == 0);
  }
  void list_lane_if_ready(std::uint32_t l);
  void update_part(std::uint32_t slot) noexcept;
  void unlink_part(std::uint32_t slot) noexcept;
  void maybe_free_lane(std::uint32_t l) noexcept;
  void maybe_free_slot(std::uint32_t slot) noexcept;
  bool finish(PartitionId p, std::int64_t offset, Entry** entry_out);

  DispatcherConfig config_;
  std::vector<Part> parts_;
  std::uint32_t free_parts_ = kNone;
  std::uint32_t ready_first_ = kNone, ready_last_ = kNone;  // partitions that may start a record
  std::vector<Node> nodes_;
  std::uint32_t free_nodes_ = kNone;
  std::vector<Lane> lanes_;
  std::uint32_t free_lanes_ = kNone;
  // Key index: open addressing (linear probing) of lane numbers; kNone empty.
  std::vector<std::uint32_t> index_ = std::vector<std::uint32_t>(64, kNone);
  std::size_t index_used_ = 0;
  std::vector<HoldEntry> holds_;  // a min-heap on `until`
  std::size_t in_flight_ = 0;
  std::size_t queued_ = 0;
};

}  // namespace kc::detail
