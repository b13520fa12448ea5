// API keys: how a tenants file stores them (salted hashes, never the keys)
// and how a presented key is checked against them.
//
// Stored form, printed by `mmserve hash-key SECRET`:
//   sha256$<salt: 32 hex digits>$<SHA-256(salt bytes || secret): 64 hex digits>
// A salted SHA-256, not a slow password hash: API keys are meant to be long
// random secrets (hash-key warns about short ones), and a key is checked on
// every request, so a slow hash would cost every request, and would let
// anyone with a wrong key make the server burn CPU.
//
// Comparisons of digests are constant-time (CRYPTO_memcmp).
// Thread-safety: every function may run concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mm {

inline constexpr size_t kApiKeySaltBytes = 16;
using KeyDigest = std::array<uint8_t, 32>;  // a SHA-256

struct ApiKeyHash {
  std::array<uint8_t, kApiKeySaltBytes> salt{};
  KeyDigest digest{};
};

// The stored form of `secret`, with a fresh random salt. INTERNAL when the
// system has no randomness to give.
StatusOr<std::string> HashApiKey(std::string_view secret);

// Parses the stored form. INVALID_ARGUMENT naming what is wrong and the
// expected form.
StatusOr<ApiKeyHash> ParseApiKeyHash(std::string_view stored);

// Whether `secret` is the key `hash` was made from (constant time in the
// digest comparison).
bool ApiKeyMatches(const ApiKeyHash& hash, std::string_view secret);

// SHA-256 of `bytes`, unsalted: what a cache of recently seen keys is keyed
// by, so that it holds no key in the clear.
KeyDigest Sha256(std::string_view bytes);

// Constant-time equality of two digests.
bool SameDigest(const KeyDigest& a, const KeyDigest& b);

}  // namespace mm
