// Scheduling core. Everything lives in pools (records, lanes, partitions)
// linked by 32-bit indices, so steady state allocates nothing and indices
// stay valid when a pool grows.
//
// Why lanes: the three modes differ only in how records are grouped into
// queues that run one at a time. Partition mode has one lane per partition,
// key mode one per key, unordered mode one lane that runs any number at once.
// A retry hold blocks exactly one lane; in unordered mode the held record is
// moved into a lane of its own so nothing else waits for it.
//
// Why a ring of offsets per partition: complete(p, offset) must find the
// record without a node-based map (an allocation per record). Offsets of a
// partition are offered in increasing order, so a ring sorted by offset with
// tombstones answers by binary search; tombstones are trimmed from the front
// and compacted when they are the majority (a held record at the front
// otherwise keeps everything behind it).
#include "dispatch/dispatcher.hpp"

#include <algorithm>
#include <functional>

#include "kc/error.hpp"

namespace kc::detail {

namespace {

std::uint64_t mix(std::uint64_t h) noexcept {
  // splitmix64 finaliser: std::hash may be weak in the low bits.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

constexpr std::uint64_t kNullKeyHash = 0x6e756c6c6b657921ULL;

bool later(const auto& a, const auto& b) noexcept { return a.until > b.until; }

}  // namespace

Dispatcher::Dispatcher(const DispatcherConfig& config) : config_(config) {
  if (config.max_in_flight == 0 || config.max_in_flight_per_partition == 0 || config.max_buffered_per_partition == 0) {
    throw Error(errc::config_invalid_value, "dispatcher: in-flight and buffer limits must be at least 1");
  }
  if (config.resume_below == 0 || config.resume_below > config.max_buffered_per_partition) {
    throw Error(errc::config_invalid_value, "dispatcher: resume_below must be in 1..max_buffered_per_partition");
  }
}

// ---------------------------------------------------------------- pools

std::uint32_t Dispatcher::new_node() {
  if (free_nodes_ != kNone) {
    const auto n = free_nodes_;
    free_nodes_ = nodes_[n].next;
    nodes_[n] = Node{};
    return n;
  }
  nodes_.emplace_back();
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

void Dispatcher::free_node(std::uint32_t n) noexcept {
  nodes_[n].lane = kNone;
  nodes_[n].next = free_nodes_;
  free_nodes_ = n;
}

std::uint32_t Dispatcher::new_lane(std::uint32_t slot) {
  std::uint32_t l;
  if (free_lanes_ != kNone) {
    l = free_lanes_;
    free_lanes_ = lanes_[l].next_ready;
  } else {
    lanes_.emplace_back();
    l = static_cast<std::uint32_t>(lanes_.size() - 1);
  }
  Lane& ln = lanes_[l];
  ln.head = ln.tail = ln.next_ready = kNone;
  ln.slot = slot;
  ln.in_flight = 0;
  ln.parallel = ln.listed = ln.held = ln.keyed = ln.null_key = false;
  ln.hash = 0;
  ln.bytes.clear();  // keeps its capacity
  return l;
}

void Dispatcher::free_lane(std::uint32_t l) noexcept {
  Lane& ln = lanes_[l];
  if (ln.keyed) {
    index_erase(l);
    ln.keyed = false;
  }
  ln.slot = kNone;
  ++ln.hold_generation;  // any heap entry for it is stale now
  ln.held = ln.listed = false;
  ln.head = ln.tail = kNone;
  ln.next_ready = free_lanes_;
  free_lanes_ = l;
}

void Dispatcher::maybe_free_lane(std::uint32_t l) noexcept {
  const Lane& ln = lanes_[l];
  if (ln.head == kNone && ln.in_flight == 0 && !ln.held && parts_[ln.slot].main_lane != l) {
    free_lane(l);
  }
}

// ---------------------------------------------------------------- key index

void Dispatcher::index_insert(std::uint32_t lane) {
  if ((index_used_ + 1) * 2 > index_.size()) {
    index_grow();
  }
  const std::size_t mask = index_.size() - 1;
  std::size_t i = mix(lanes_[lane].hash) & mask;
  while (index_[i] != kNone) {
    i = (i + 1) & mask;
  }
  index_[i] = lane;
  ++index_used_;
}

void Dispatcher::index_grow() {
  std::vector<std::uint32_t> old(index_.size() * 2, kNone);
  old.swap(index_);
  const std::size_t mask = index_.size() - 1;
  for (const auto l : old) {
    if (l != kNone) {
      std::size_t i = mix(lanes_[l].hash) & mask;
      while (index_[i] != kNone) {
        i = (i + 1) & mask;
      }
      index_[i] = l;
    }
  }
}

void Dispatcher::index_erase(std::uint32_t lane) noexcept {
  // Linear probing with backward-shift deletion: no tombstones, so lookups
  // never slow down with churn of keys.
  const std::size_t mask = index_.size() - 1;
  std::size_t i = mix(lanes_[lane].hash) & mask;
  while (index_[i] != lane) {
    i = (i + 1) & mask;
  }
  std::size_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    if (index_[j] == kNone) {
      break;
    }
    const std::size_t home = mix(lanes_[index_[j]].hash) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      index_[i] = index_[j];
      i = j;
    }
  }
  index_[i] = kNone;
  --index_used_;
}

std::uint32_t Dispatcher::key_lane(std::uint32_t slot, std::optional<std::string_view> key) {
  const std::uint64_t base =
      !key ? kNullKeyHash : config_.key_hash != nullptr ? config_.key_hash(*key) : std::hash<std::string_view>{}(*key);
  const std::uint64_t h = base ^ mix(std::uint64_t{slot} + 1);
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = mix(h) & mask; index_[i] != kNone; i = (i + 1) & mask) {
    const Lane& ln = lanes_[index_[i]];
    // The hash only finds candidates; the bytes decide.
    if (ln.hash == h && ln.slot == slot && ln.null_key == !key && (!key || ln.bytes == *key)) {
      return index_[i];
    }
  }
  const auto l = new_lane(slot);
  Lane& ln = lanes_[l];
  ln.hash = h;
  ln.null_key = !key;
  if (key) {
    ln.bytes.assign(key->data(), key->size());
  }
  ln.keyed = true;
  index_insert(l);
  return l;
}

// ---------------------------------------------------------------- partitions

Dispatcher::Part* Dispatcher::part(PartitionId p) noexcept {
  if (p.slot >= parts_.size()) {
    return nullptr;
  }
  Part& pt = parts_[p.slot];
  return pt.generation == p.generation && (pt.active || pt.draining) ? &pt : nullptr;
}

const Dispatcher::Part* Dispatcher::part(PartitionId p) const noexcept {
  return const_cast<Dispatcher*>(this)->part(p);
}

PartitionId Dispatcher::assign() {
  std::uint32_t slot;
  if (free_parts_ != kNone) {
    slot = free_parts_;
    free_parts_ = parts_[slot].next;
  } else {
    parts_.emplace_back();
    slot = static_cast<std::uint32_t>(parts_.size() - 1);
  }
  Part& pt = parts_[slot];
  pt.active = true;
  pt.draining = pt.listed = pt.paused = pt.any_offered = false;
  pt.prev = pt.next = pt.ready_head = pt.ready_tail = kNone;
  pt.in_flight = pt.count = 0;
  pt.last_offset = 0;
  pt.ring_head = pt.ring_size = pt.ring_dead = 0;
  pt.main_lane = kNone;
  if (config_.ordering != Ordering::key) {
    const auto l = new_lane(slot);
    lanes_[l].parallel = config_.ordering == Ordering::unordered;
    parts_[slot].main_lane = l;
  }
  return {slot, parts_[slot].generation};
}

void Dispatcher::maybe_free_slot(std::uint32_t slot) noexcept {
  Part& pt = parts_[slot];
  if (pt.draining && pt.in_flight == 0) {
    pt.draining = false;
    ++pt.generation;  // the old id never becomes valid again
    pt.ring_head = pt.ring_size = pt.ring_dead = 0;
    pt.next = free_parts_;
    free_parts_ = slot;
  }
}

void Dispatcher::unlink_part(std::uint32_t slot) noexcept {
  Part& pt = parts_[slot];
  if (pt.listed) {
    (pt.prev == kNone ? ready_first_ : parts_[pt.prev].next) = pt.next;
    (pt.next == kNone ? ready_last_ : parts_[pt.next].prev) = pt.prev;
    pt.prev = pt.next = kNone;
    pt.listed = false;
  }
}

void Dispatcher::update_part(std::uint32_t slot) noexcept {
  Part& pt = parts_[slot];
  const bool ready = pt.active && pt.ready_head != kNone && pt.in_flight < config_.max_in_flight_per_partition;
  if (ready && !pt.listed) {
    pt.prev = ready_last_;
    pt.next = kNone;
    (ready_last_ == kNone ? ready_first_ : parts_[ready_last_].next) = slot;
    ready_last_ = slot;
    pt.listed = true;
  } else if (!ready) {
    unlink_part(slot);
  }
}

void Dispatcher::list_lane_if_ready(std::uint32_t l) {
  Lane& ln = lanes_[l];
  if (ln.listed || !lane_ready(ln)) {
    return;
  }
  Part& pt = parts_[ln.slot];
  ln.next_ready = kNone;
  (pt.ready_tail == kNone ? pt.ready_head : lanes_[pt.ready_tail].next_ready) = l;
  pt.ready_tail = l;
  ln.listed = true;
}

// ---------------------------------------------------------------- ring

void Dispatcher::ring_push(Part& pt, std::int64_t offset, std::uint32_t node) {
  if (pt.ring_size == pt.ring.size()) {
    std::vector<Entry> bigger(std::max<std::size_t>(16, pt.ring.size() * 2));
    for (std::size_t i = 0; i < pt.ring_size; ++i) {
      bigger[i] = pt.ring[(pt.ring_head + i) & (pt.ring.size() - 1)];
    }
    pt.ring.swap(bigger);
    pt.ring_head = 0;
  }
  pt.ring[(pt.ring_head + pt.ring_size) & (pt.ring.size() - 1)] = {offset, node};
  ++pt.ring_size;
}

Dispatcher::Entry* Dispatcher::find(Part& pt, std::int64_t offset) noexcept {
  const std::size_t mask = pt.ring.size() - 1;
  std::size_t lo = 0, hi = pt.ring_size;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (pt.ring[(pt.ring_head + mid) & mask].offset < offset) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == pt.ring_size) {
    return nullptr;
  }
  Entry& e = pt.ring[(pt.ring_head + lo) & mask];
  return e.offset == offset && e.node != kNone ? &e : nullptr;
}

void Dispatcher::ring_trim(Part& pt) {
  const std::size_t mask = pt.ring.size() - 1;
  while (pt.ring_size > 0 && pt.ring[pt.ring_head].node == kNone) {
    pt.ring_head = (pt.ring_head + 1) & mask;
    --pt.ring_size;
    --pt.ring_dead;
  }
  if (pt.ring_dead >= 32 && pt.ring_dead * 2 > pt.ring_size) {
    std::size_t w = 0;
    for (std::size_t r = 0; r < pt.ring_size; ++r) {
      const Entry e = pt.ring[(pt.ring_head + r) & mask];
      if (e.node != kNone) {
        pt.ring[(pt.ring_head + w++) & mask] = e;
      }
    }
    pt.ring_size = w;
    pt.ring_dead = 0;
  }
}

// ---------------------------------------------------------------- operations

bool Dispatcher::offer(PartitionId p, std::int64_t offset, std::optional<std::string_view> key) {
  Part* pt = part(p);
  if (pt == nullptr || !pt->active || (pt->any_offered && offset <= pt->last_offset)) {
    return false;
  }
  const auto l = config_.ordering == Ordering::key ? key_lane(p.slot, key) : pt->main_lane;
  const auto n = new_node();
  nodes_[n].offset = offset;
  nodes_[n].lane = l;
  Lane& ln = lanes_[l];
  (ln.tail == kNone ? ln.head : nodes_[ln.tail].next) = n;
  ln.tail = n;
  ring_push(*pt, offset, n);  // new_lane/new_node grow other pools, never parts_
  pt->last_offset = offset;
  pt->any_offered = true;
  ++pt->count;
  ++queued_;
  list_lane_if_ready(l);
  update_part(p.slot);
  return true;
}

std::optional<Dispatch> Dispatcher::next(Clock::time_point now) {
  while (!holds_.empty() && holds_.front().until <= now) {
    std::pop_heap(holds_.begin(), holds_.end(), [](const auto& a, const auto& b) { return later(a, b); });
    const HoldEntry h = holds_.back();
    holds_.pop_back();
    Lane& ln = lanes_[h.lane];
    if (ln.held && ln.hold_generation == h.generation) {
      ln.held = false;
      ++ln.hold_generation;
      list_lane_if_ready(h.lane);
      update_part(ln.slot);
    }
  }
  if (in_flight_ >= config_.max_in_flight || ready_first_ == kNone) {
    return std::nullopt;
  }
  const auto slot = ready_first_;
  Part& pt = parts_[slot];
  const auto l = pt.ready_head;
  Lane& ln = lanes_[l];
  pt.ready_head = ln.next_ready;
  if (pt.ready_head == kNone) {
    pt.ready_tail = kNone;
  }
  ln.listed = false;
  const auto n = ln.head;
  Node& node = nodes_[n];
  ln.head = node.next;
  if (ln.head == kNone) {
    ln.tail = kNone;
  }
  node.next = kNone;
  node.in_flight = true;
  ++ln.in_flight;
  ++pt.in_flight;
  ++in_flight_;
  --queued_;
  list_lane_if_ready(l);  // to the back: keys take turns
  unlink_part(slot);      // and partitions too
  update_part(slot);
  return Dispatch{{slot, pt.generation}, node.offset, node.attempt};
}

bool Dispatcher::finish(PartitionId p, std::int64_t offset, Entry** entry_out) {
  // Shared by complete() and hold(): the record must be in flight. Returns
  // true with *entry_out set when the partition is live; after a revoke the
  // record is forgotten here and false is returned.
  Part* pt = part(p);
  if (pt == nullptr) {
    return false;
  }
  Entry* e = find(*pt, offset);
  if (e == nullptr || !nodes_[e->node].in_flight) {
    return false;
  }
  const auto n = e->node;
  --pt->in_flight;
  --in_flight_;
  if (pt->draining) {
    e->node = kNone;
    ++pt->ring_dead;
    ring_trim(*pt);
    --pt->count;
    free_node(n);
    maybe_free_slot(p.slot);
    return false;
  }
  *entry_out = e;
  return true;
}

bool Dispatcher::complete(PartitionId p, std::int64_t offset) {
  Entry* e = nullptr;
  if (!finish(p, offset, &e)) {
    return false;
  }
  Part& pt = parts_[p.slot];
  const auto n = e->node;
  e->node = kNone;
  ++pt.ring_dead;
  ring_trim(pt);
  --pt.count;
  const auto l = nodes_[n].lane;
  free_node(n);
  --lanes_[l].in_flight;
  maybe_free_lane(l);
  if (lanes_[l].slot != kNone) {
    list_lane_if_ready(l);
  }
  update_part(p.slot);
  return true;
}

bool Dispatcher::hold(PartitionId p, std::int64_t offset, Clock::time_point until) {
  Entry* e = nullptr;
  if (!finish(p, offset, &e)) {
    return false;
  }
  const auto n = e->node;
  auto l = nodes_[n].lane;
  --lanes_[l].in_flight;
  if (lanes_[l].parallel) {
    // Unordered: the record waits alone, in a lane of its own.
    l = new_lane(p.slot);
    nodes_[n].lane = l;
  }
  Node& node = nodes_[n];
  Lane& ln = lanes_[l];
  node.in_flight = false;
  ++node.attempt;
  node.next = ln.head;  // back to the head of its key or partition
  ln.head = n;
  if (ln.tail == kNone) {
    ln.tail = n;
  }
  ln.held = true;
  holds_.push_back({until, l, ln.hold_generation});
  std::push_heap(holds_.begin(), holds_.end(), [](const auto& a, const auto& b) { return later(a, b); });
  ++queued_;
  update_part(p.slot);
  return true;
}

bool Dispatcher::release(PartitionId p, std::int64_t offset) {
  Part* pt = part(p);
  if (pt == nullptr || !pt->active) {
    return false;
  }
  const Entry* e = find(*pt, offset);
  if (e == nullptr || nodes_[e->node].in_flight) {
    return false;
  }
  const auto l = nodes_[e->node].lane;
  Lane& ln = lanes_[l];
  if (!ln.held || ln.head != e->node) {
    return false;
  }
  ln.held = false;
  ++ln.hold_generation;  // its heap entry is stale now
  list_lane_if_ready(l);
  update_part(p.slot);
  return true;
}

std::size_t Dispatcher::revoke(PartitionId p) {
  Part* pt = part(p);
  if (pt == nullptr || !pt->active) {
    return 0;
  }
  const std::size_t mask = pt->ring.size() - 1;
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < pt->ring_size; ++i) {
    Entry& e = pt->ring[(pt->ring_head + i) & mask];
    if (e.node == kNone) {
      continue;
    }
    Node& node = nodes_[e.node];
    if (node.lane != kNone && lanes_[node.lane].slot != kNone) {
      free_lane(node.lane);
    }
    if (node.in_flight) {
      node.lane = kNone;  // completes without a lane (see finish())
    } else {
      free_node(e.node);
      e.node = kNone;
      ++pt->ring_dead;
      ++dropped;
    }
  }
  if (pt->main_lane != kNone && lanes_[pt->main_lane].slot != kNone) {
    free_lane(pt->main_lane);
  }
  pt->main_lane = kNone;
  pt->ready_head = pt->ready_tail = kNone;
  pt->active = false;
  pt->paused = false;
  pt->count -= dropped;
  queued_ -= dropped;
  update_part(p.slot);  // unlinks it
  ring_trim(*pt);
  pt->draining = true;
  maybe_free_slot(p.slot);
  return dropped;
}

bool Dispatcher::should_pause(PartitionId p) {
  Part* pt = part(p);
  if (pt == nullptr || !pt->active || pt->paused || pt->count <= config_.max_buffered_per_partition) {
    return false;
  }
  pt->paused = true;
  return true;
}

bool Dispatcher::should_resume(PartitionId p) {
  Part* pt = part(p);
  if (pt == nullptr || !pt->active || !pt->paused || pt->count >= config_.resume_below) {
    return false;
  }
  pt->paused = false;
  return true;
}

bool Dispatcher::paused(PartitionId p) const noexcept {
  const Part* pt = part(p);
  return pt != nullptr && pt->active && pt->paused;
}

std::optional<Dispatcher::Clock::time_point> Dispatcher::next_due() const noexcept {
  if (holds_.empty()) {
    return std::nullopt;
  }
  return holds_.front().until;
}

std::size_t Dispatcher::buffered(PartitionId p) const noexcept {
  const Part* pt = part(p);
  return pt != nullptr && pt->active ? pt->count : 0;
}

std::size_t Dispatcher::in_flight(PartitionId p) const noexcept {
  const Part* pt = part(p);
  return pt != nullptr ? pt->in_flight : 0;
}

}  // namespace kc::detail
