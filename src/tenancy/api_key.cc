#include "tenancy/api_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <initializer_list>

#include "core/hex.h"

namespace mm {

namespace {

constexpr std::string_view kScheme = "sha256$";

template <size_t N>
std::string Hex(const std::array<uint8_t, N>& bytes) {
  return LowerHex(bytes.data(), N);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <size_t N>
bool FromHex(std::string_view text, std::array<uint8_t, N>& out) {
  if (text.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    const int hi = HexValue(text[2 * i]), lo = HexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

// SHA-256 of the concatenated parts. The request path hashes every key it
// sees (Sha256), so nothing here is looked up or allocated per call: OpenSSL
// 3's one-shot SHA256() fetches the algorithm each time (about 5x slower).
KeyDigest Digest(std::initializer_list<std::string_view> parts) {
  static const EVP_MD* const kSha256 = [] {
    const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md != nullptr ? md : EVP_sha256();
  }();
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Context context;
  KeyDigest digest{};
  unsigned int len = 0;
  EVP_DigestInit_ex(context.ctx, kSha256, nullptr);
  for (std::string_view part : parts) EVP_DigestUpdate(context.ctx, part.data(), part.size());
  EVP_DigestFinal_ex(context.ctx, digest.data(), &len);
  return digest;
}

KeyDigest SaltedDigest(const std::array<uint8_t, kApiKeySaltBytes>& salt, std::string_view secret) {
  return Digest(
      {std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()), secret});
}

}  // namespace

StatusOr<std::string> HashApiKey(std::string_view secret) {
  ApiKeyHash hash;
  if (RAND_bytes(hash.salt.data(), static_cast<int>(hash.salt.size())) != 1) {
    return Internal("hash-key: the system gave no random bytes for the salt");
  }
  hash.digest = SaltedDigest(hash.salt, secret);
  return std::string(kScheme) + Hex(hash.salt) + "$" + Hex(hash.digest);
}

StatusOr<ApiKeyHash> ParseApiKeyHash(std::string_view stored) {
  const auto bad = [&](std::string_view what) {
    return InvalidArgument("API key hash '" + std::string(stored.substr(0, 120)) +
                           "': " + std::string(what) +
                           "; expected sha256$<32 hex digits>$<64 hex digits>, as printed by "
                           "`mmserve hash-key SECRET`");
  };
  if (stored.substr(0, kScheme.size()) != kScheme) return bad("unknown scheme");
  const std::string_view rest = stored.substr(kScheme.size());
  const size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos) return bad("no '$' between salt and digest");
  ApiKeyHash hash;
  if (!FromHex(rest.substr(0, dollar), hash.salt)) return bad("the salt is not 32 hex digits");
  if (!FromHex(rest.substr(dollar + 1), hash.digest)) {
    return bad("the digest is not 64 hex digits");
  }
  return hash;
}

bool ApiKeyMatches(const ApiKeyHash& hash, std::string_view secret) {
  return SameDigest(SaltedDigest(hash.salt, secret), hash.digest);
}

KeyDigest Sha256(std::string_view bytes) { return Digest({bytes}); }

bool SameDigest(const KeyDigest& a, const KeyDigest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace mm
