#include "cache/response_cache.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>
#include <variant>

namespace mm {

namespace {

constexpr size_t kAlign = 64;
size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

struct AlignedDelete {
  void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{kAlign}); }
};

// An entry's answer: its outputs, viewing one buffer it owns.
struct CachedOutputs {
  std::vector<Tensor> tensors;
  std::unique_ptr<std::byte[], AlignedDelete> buffer;
};

void Append(std::string& key, const void* bytes, size_t n) {
  key.append(static_cast<const char*>(bytes), n);
}
template <typename T>
void AppendValue(std::string& key, T value) {
  Append(key, &value, sizeof(value));
}
void AppendString(std::string& key, std::string_view s) {
  AppendValue(key, static_cast<uint64_t>(s.size()));
  key.append(s);
}

// Parameters that change when or how an answer is written, not what it is.
bool Irrelevant(std::string_view parameter) {
  return parameter == "priority" || parameter == "timeout" || parameter == "binary_data_output";
}

}  // namespace

struct ResponseCache::Entry {
  std::string key;
  uint64_t scope = 0;
  uint64_t bytes = 0;
  std::shared_ptr<const CachedOutputs> outputs;
  std::list<Entry*>::iterator lru;
  std::list<Entry*>::iterator in_scope;
};

StatusOr<std::unique_ptr<ResponseCache>> ResponseCache::Create(Options options) {
  if (options.capacity_bytes == 0) {
    return InvalidArgument("the response cache needs a size above 0 bytes");
  }
  return std::unique_ptr<ResponseCache>(new ResponseCache(options));
}

ResponseCache::ResponseCache(Options options) : options_(options) {}
ResponseCache::~ResponseCache() = default;

std::shared_ptr<ResponseCache::Scope> ResponseCache::NewScope() {
  uint64_t id;
  {
    MutexLock lock(mu_);
    id = next_scope_++;
  }
  return std::shared_ptr<Scope>(new Scope(this, id));
}

ResponseCache::Scope::~Scope() { cache_->DropScope(id_); }

std::string ResponseCache::Scope::Key(const InferRequest& request, std::string_view tenant) const {
  size_t size = 64 + tenant.size();
  for (const Tensor& t : request.inputs)
    size += 64 + t.name.size() + 8 * t.shape.size() + t.data.size();
  for (const RequestedOutput& o : request.outputs) size += 8 + o.name.size();
  std::string key;
  key.reserve(size);
  AppendValue(key, id_);
  AppendString(key, tenant);
  AppendValue(key, static_cast<uint64_t>(request.outputs.size()));
  for (const RequestedOutput& o : request.outputs) AppendString(key, o.name);
  for (const auto& [name, value] : request.parameters) {
    if (Irrelevant(name)) continue;
    AppendString(key, name);
    AppendValue(key, static_cast<uint8_t>(value.index()));
    std::visit(
        [&key](const auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) {
            AppendString(key, v);
          } else {
            AppendValue(key, v);
          }
        },
        value);
  }
  AppendValue(key, static_cast<uint64_t>(request.inputs.size()));
  for (const Tensor& t : request.inputs) {
    AppendString(key, t.name);
    AppendValue(key, static_cast<uint32_t>(t.dtype));
    AppendValue(key, static_cast<uint64_t>(t.shape.size()));
    Append(key, t.shape.data(), t.shape.size() * sizeof(int64_t));
    AppendValue(key, static_cast<uint64_t>(t.data.size()));
    Append(key, t.data.data(), t.data.size());
  }
  return key;
}

std::unique_ptr<InferResponse> ResponseCache::Lookup(const std::string& key) {
  std::shared_ptr<const CachedOutputs> outputs;
  {
    MutexLock lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    Entry* entry = it->second.get();
    lru_.splice(lru_.begin(), lru_, entry->lru);
    outputs = entry->outputs;
  }
  auto response = std::make_unique<InferResponse>();
  response->outputs.reserve(outputs->tensors.size());
  for (const Tensor& t : outputs->tensors) {
    Tensor& out = response->outputs.emplace_back(t);
    out.owner = outputs;
  }
  return response;
}

bool ResponseCache::Insert(const Scope& scope, std::string key, const InferResponse& response) {
  // The copy, made outside the lock: one buffer, each output 64-byte aligned.
  size_t data_bytes = 0;
  for (const Tensor& t : response.outputs) data_bytes += AlignUp(t.data.size());
  const uint64_t bytes = key.size() + data_bytes + kEntryOverhead;
  if (bytes > options_.capacity_bytes) return false;
  auto outputs = std::make_shared<CachedOutputs>();
  outputs->buffer.reset(static_cast<std::byte*>(
      ::operator new[](std::max<size_t>(data_bytes, 1), std::align_val_t{kAlign})));
  size_t at = 0;
  outputs->tensors.reserve(response.outputs.size());
  for (const Tensor& t : response.outputs) {
    Tensor& copy = outputs->tensors.emplace_back();
    copy.name = t.name;
    copy.dtype = t.dtype;
    copy.shape = t.shape;
    if (!t.data.empty()) std::memcpy(outputs->buffer.get() + at, t.data.data(), t.data.size());
    copy.data = {outputs->buffer.get() + at, t.data.size()};
    at += AlignUp(t.data.size());
  }
  auto entry = std::make_unique<Entry>();
  entry->key = std::move(key);
  entry->scope = scope.id_;
  entry->bytes = bytes;
  entry->outputs = std::move(outputs);
  std::vector<std::unique_ptr<Entry>> dropped;  // freed outside the lock
  {
    MutexLock lock(mu_);
    if (auto it = entries_.find(entry->key); it != entries_.end()) {
      dropped.push_back(std::move(it->second));
      EraseLocked(dropped.back().get());
      entries_.erase(it);
    }
    while (bytes_ + bytes > options_.capacity_bytes && !lru_.empty()) {
      Entry* oldest = lru_.back();
      auto it = entries_.find(std::string_view(oldest->key));
      dropped.push_back(std::move(it->second));
      EraseLocked(oldest);
      entries_.erase(it);
      ++evictions_;
    }
    auto& in_scope = scopes_[entry->scope];
    entry->in_scope = in_scope.insert(in_scope.end(), entry.get());
    lru_.push_front(entry.get());
    entry->lru = lru_.begin();
    bytes_ += bytes;
    const std::string_view view = entry->key;
    entries_.emplace(view, std::move(entry));
  }
  return true;
}

void ResponseCache::EraseLocked(Entry* entry) {
  lru_.erase(entry->lru);
  auto scope = scopes_.find(entry->scope);
  scope->second.erase(entry->in_scope);
  if (scope->second.empty()) scopes_.erase(scope);
  bytes_ -= entry->bytes;
}

void ResponseCache::DropScope(uint64_t id) {
  std::vector<std::unique_ptr<Entry>> dropped;  // freed outside the lock
  MutexLock lock(mu_);
  auto scope = scopes_.find(id);
  if (scope == scopes_.end()) return;
  std::list<Entry*> members = std::move(scope->second);
  scopes_.erase(scope);
  for (Entry* entry : members) {
    lru_.erase(entry->lru);
    bytes_ -= entry->bytes;
    auto it = entries_.find(std::string_view(entry->key));
    dropped.push_back(std::move(it->second));
    entries_.erase(it);
  }
}

ResponseCache::Figures ResponseCache::Read() const {
  MutexLock lock(mu_);
  return {entries_.size(), bytes_, options_.capacity_bytes, evictions_};
}

}  // namespace mm
