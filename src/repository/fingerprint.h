// 64-bit FNV-1a over length-prefixed fields: the fingerprints a repository
// scan records (repository.h) and a remote cache entry's id. Small, stable
// across runs, builds and platforms; not cryptographic.
#pragma once

#include <cstdint>
#include <string_view>

namespace mm {

class Fingerprint {
 public:
  void AddNumber(uint64_t value) {
    for (int i = 0; i < 8; ++i) AddByte(static_cast<unsigned char>(value >> (8 * i)));
  }
  // Length-prefixed, so that field boundaries cannot shift ("ab","c" vs "a","bc").
  void AddField(std::string_view bytes) {
    AddNumber(bytes.size());
    for (char c : bytes) AddByte(static_cast<unsigned char>(c));
  }
  // Never 0, which ModelSource keeps for "no config.pbtxt".
  uint64_t value() const { return hash_ == 0 ? 1 : hash_; }

 private:
  void AddByte(unsigned char byte) {
    hash_ ^= byte;
    hash_ *= 1099511628211ull;  // the FNV prime
  }
  uint64_t hash_ = 14695981039346656037ull;  // the FNV offset basis
};

}  // namespace mm
