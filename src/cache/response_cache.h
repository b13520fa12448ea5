// ResponseCache: Triton's response cache (`--cache-config local,size=BYTES`,
// `response_cache { enable: true }` per model): answers a request that was
// answered before without running the model.
//
// Keys. A request's key (Scope::Key) holds the bytes that decide its answer:
// every input's name, data type, shape and bytes, the outputs it asks for,
// its parameters (but "priority" and "timeout", which change when, not
// what, and "binary_data_output", which changes only the encoding), and the
// tenant it is answered for unless the model's owner shares its entries
// across tenants. Entries live in a Scope, one per loaded model
// version (made when it loads, held by it), so a key never meets another
// version's or another copy's entries: a version swapped or unloaded drops
// its entries when its Scope goes. Lookups compare whole keys: a hash
// collision is never a wrong answer.
//
// Bounds. `capacity_bytes` over every entry: its key, its outputs' bytes and
// a fixed overhead. An insert that does not fit evicts the least recently
// used entries (any model's) first; an entry larger than the whole cache is
// not kept.
//
// Entries own a copy of the outputs they answer with (a backend's memory, a
// worker's shared memory, is never held by the cache). A hit's response
// views that copy and keeps it alive (Tensor::owner) while the response is
// written, even if the entry is evicted meanwhile.
//
// Thread-safety: every method may be called concurrently (one mutex; a
// lookup holds it for a hash and a compare).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/infer_request.h"
#include "core/status.h"
#include "core/thread_annotations.h"

namespace mm {

class ResponseCache {
 public:
  struct Options {
    uint64_t capacity_bytes = 0;  // > 0
  };
  // INVALID_ARGUMENT for a capacity of 0.
  static StatusOr<std::unique_ptr<ResponseCache>> Create(Options options);
  ~ResponseCache();

  // A model version's entries: dropped when the last reference goes. The
  // cache must outlive its scopes.
  class Scope {
   public:
    // The key of `request` (validated against its model) for `tenant`
    // (empty: shared across tenants), within this scope.
    std::string Key(const InferRequest& request, std::string_view tenant) const;
    // The cache's Lookup and Insert, for this scope's keys.
    std::unique_ptr<InferResponse> Lookup(const std::string& key) const {
      return cache_->Lookup(key);
    }
    bool Insert(std::string key, const InferResponse& response) const {
      return cache_->Insert(*this, std::move(key), response);
    }
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    friend class ResponseCache;
    Scope(ResponseCache* cache, uint64_t id) : cache_(cache), id_(id) {}
    ResponseCache* const cache_;
    const uint64_t id_;
  };
  std::shared_ptr<Scope> NewScope();

  // A hit: a response whose outputs are the entry's (views it keeps alive);
  // null on a miss (nothing is allocated).
  std::unique_ptr<InferResponse> Lookup(const std::string& key) MM_EXCLUDES(mu_);
  // Keeps `response`'s outputs as the answer to `key` (Scope::Key of
  // `scope`), copied, evicting least recently used entries to fit; replaces
  // an entry of the same key. False when the entry alone exceeds the cache.
  bool Insert(const Scope& scope, std::string key, const InferResponse& response) MM_EXCLUDES(mu_);

  struct Figures {
    uint64_t entries = 0;
    uint64_t bytes = 0;  // held now, as counted against the capacity
    uint64_t capacity = 0;
    uint64_t evictions = 0;  // entries dropped to make room
  };
  Figures Read() const MM_EXCLUDES(mu_);

  // What an entry costs beyond its key and output bytes.
  static constexpr uint64_t kEntryOverhead = 256;

 private:
  struct Entry;
  explicit ResponseCache(Options options);
  void DropScope(uint64_t id) MM_EXCLUDES(mu_);
  void EraseLocked(Entry* entry) MM_REQUIRES(mu_);

  const Options options_;
  mutable Mutex mu_;
  uint64_t next_scope_ MM_GUARDED_BY(mu_) = 1;
  // By key (which starts with its scope's id); the key views the entry's own.
  std::unordered_map<std::string_view, std::unique_ptr<Entry>> entries_ MM_GUARDED_BY(mu_);
  std::list<Entry*> lru_ MM_GUARDED_BY(mu_);  // most recently used first
  std::unordered_map<uint64_t, std::list<Entry*>> scopes_ MM_GUARDED_BY(mu_);
  uint64_t bytes_ MM_GUARDED_BY(mu_) = 0;
  uint64_t evictions_ MM_GUARDED_BY(mu_) = 0;
};

}  // namespace mm
