// HttpServer and GrpcServer with TLS: Create() refuses bad files naming the
// flag and the file; a TLS server answers HTTP over TLS, closes failed and
// silent handshakes, and its Stop() closes connections still in their
// handshake. The certificates are made here with OpenSSL.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "grpc/grpc_server.h"
#include "http/http_server.h"
#include "lifecycle/model_manager.h"
#include "local_repositories.h"
#include "scheduler/execution_slots.h"
#include "service/inference_service.h"

namespace mm {
namespace {

// A request the server answers and then closes the connection.
constexpr std::string_view kLive =
    "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

Key NewKey() { return Key(EVP_EC_gen("P-256"), EVP_PKEY_free); }

// A self-signed certificate for 127.0.0.1, valid for a day.
Cert SelfSigned(EVP_PKEY* key) {
  Cert cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_sign(cert.get(), key, EVP_sha256());
  return cert;
}

void WriteCert(const std::filesystem::path& path, X509* cert) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, cert);
  std::fclose(f);
}

void WriteKey(const std::filesystem::path& path, EVP_PKEY* key) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// A connected TCP socket whose reads give up after 60 s (a safety net only).
int Connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval limit{.tv_sec = 60, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  return fd;
}

// Reads until the server closes; false when the safety net fired instead.
bool ReadUntilClosed(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

// Sends `request` over TLS (the client checks no certificate) and returns
// what comes back until the server closes; empty when the handshake fails.
std::string TlsExchange(uint16_t port, std::string_view request) {
  const int fd = Connect(port);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  std::string reply;
  if (SSL_connect(ssl) == 1 &&
      SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0) {
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) reply.append(buf, static_cast<size_t>(n));
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  return reply;
}

class HttpServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("http_tls_test_" + std::to_string(::getpid()) + "_" +
            std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(dir_ / "repo");
    cert_ = (dir_ / "cert.pem").string();
    key_ = (dir_ / "key.pem").string();
    other_key_ = (dir_ / "other-key.pem").string();
    junk_ = (dir_ / "junk.pem").string();
    ModelManager::Options mo;
    mo.repositories = LocalRepositories({dir_ / "repo"});
    mo.slots = &pool_;
    mo.backends = &backends_;
    manager_ = std::move(*ModelManager::Create(mo));
    static_cast<void>(manager_->Start());  // a failed start-up load is in the index
    service_ = std::move(*InferenceService::Create({manager_.get(), "mmserve", "9.9"}));
    service_->SetReady(true);
    Key key = NewKey();
    Key other_key = NewKey();
    Cert cert = SelfSigned(key.get());
    WriteCert(cert_, cert.get());
    WriteKey(key_, key.get());
    WriteKey(other_key_, other_key.get());
    std::ofstream(junk_) << "not a certificate\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StatusOr<std::unique_ptr<HttpServer>> Create(std::string cert, std::string key,
                                               std::string ca = "",
                                               uint32_t handshake_timeout_ms = 10'000) {
    HttpServer::Options options;
    options.port = 0;
    options.threads = 1;
    options.tls_cert_file = std::move(cert);
    options.tls_key_file = std::move(key);
    options.tls_client_ca_file = std::move(ca);
    options.tls_handshake_timeout_ms = handshake_timeout_ms;
    return HttpServer::Create(options, service_.get());
  }

  // Create() fails with INVALID_ARGUMENT naming every one of `words`.
  void ExpectRefused(const StatusOr<std::unique_ptr<HttpServer>>& server,
                     std::initializer_list<std::string> words) {
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument);
    for (const std::string& word : words) {
      EXPECT_NE(server.status().message().find(word), std::string::npos)
          << "'" << word << "' not in: " << server.status().message();
    }
  }

  std::filesystem::path dir_;
  std::string cert_;  // self-signed, for 127.0.0.1
  std::string key_;   // cert_'s
  std::string other_key_;
  std::string junk_;  // not PEM
  ExecutionSlots pool_{ExecutionSlotsOptions{.slots = 1}};
  BackendRegistry backends_;  // none: these tests load no model
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<InferenceService> service_;
};

TEST_F(HttpServerTlsTest, RefusesBadFilesNamingTheFlagAndTheFile) {
  ExpectRefused(Create("", key_), {"--tls-cert"});
  ExpectRefused(Create(cert_, ""), {"--tls-key"});
  ExpectRefused(Create("", "", cert_), {"--tls-client-ca", "--tls-cert"});
  const std::string missing = (dir_ / "missing.pem").string();
  ExpectRefused(Create(missing, key_), {"--tls-cert", missing});
  ExpectRefused(Create(cert_, missing), {"--tls-key", missing});
  ExpectRefused(Create(cert_, key_, missing), {"--tls-client-ca", missing});
  ExpectRefused(Create(junk_, key_), {"--tls-cert", junk_, "PEM"});
  ExpectRefused(Create(cert_, junk_), {"--tls-key", junk_});
  ExpectRefused(Create(cert_, other_key_), {"--tls-key", other_key_, "--tls-cert", cert_});
  ExpectRefused(Create(cert_, key_, junk_), {"--tls-client-ca", junk_});
  EXPECT_TRUE(Create(cert_, key_).ok());
  EXPECT_TRUE(Create(cert_, key_, cert_).ok());
}

TEST_F(HttpServerTlsTest, GrpcRefusesUnreadableFilesNamingTheFlagAndTheFile) {
  GrpcServer::Options options;
  options.port = 0;
  options.tls_cert_file = cert_;
  options.tls_key_file = (dir_ / "missing.pem").string();
  auto server = GrpcServer::Start(options, service_.get());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("--tls-key " + options.tls_key_file), std::string::npos)
      << server.status().message();
  options.tls_key_file = junk_;
  server = GrpcServer::Start(options, service_.get());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("--tls-key " + options.tls_key_file), std::string::npos)
      << server.status().message();
  options.tls_key_file = key_;
  server = GrpcServer::Start(options, service_.get());
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Stop();
}

TEST_F(HttpServerTlsTest, AnswersOverTlsAndClosesAPlainClient) {
  auto server = Create(cert_, key_);
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Start();
  const uint16_t port = (*server)->port();
  const std::string reply = TlsExchange(port, kLive);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  // Plain HTTP on the TLS port: no HTTP answer, the connection is closed.
  const int fd = Connect(port);
  const std::string_view plain = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, plain.data(), plain.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(plain.size()));
  std::string got;
  EXPECT_TRUE(ReadUntilClosed(fd, &got));
  EXPECT_EQ(got.find("HTTP/1.1"), std::string::npos) << got;
  ::close(fd);
  // The server goes on.
  EXPECT_EQ(TlsExchange(port, kLive).rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  (*server)->Stop();
}

TEST_F(HttpServerTlsTest, MutualTlsRefusesAClientWithoutACertificate) {
  auto server = Create(cert_, key_, cert_);
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Start();
  EXPECT_EQ(TlsExchange((*server)->port(), kLive), "");
  (*server)->Stop();
}

TEST_F(HttpServerTlsTest, ClosesAClientThatNeverHandshakes) {
  auto server = Create(cert_, key_, "", /*handshake_timeout_ms=*/50);
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Start();
  const int fd = Connect((*server)->port());
  std::string got;
  EXPECT_TRUE(ReadUntilClosed(fd, &got));  // closed by the server, not the 60 s net
  EXPECT_EQ(got, "");
  ::close(fd);
  (*server)->Stop();
}

TEST_F(HttpServerTlsTest, StopClosesAConnectionInItsHandshake) {
  // A handshake limit far beyond the test's patience: Stop() must not wait for it.
  auto server = Create(cert_, key_, "", /*handshake_timeout_ms=*/600'000);
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Start();
  const int fd = Connect((*server)->port());
  // Accepted in order on the one I/O thread: once this exchange is answered,
  // the silent connection above is in its handshake.
  ASSERT_EQ(TlsExchange((*server)->port(), kLive).rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  (*server)->Stop();
  std::string got;
  EXPECT_TRUE(ReadUntilClosed(fd, &got));
  ::close(fd);
}

}  // namespace
}  // namespace mm
