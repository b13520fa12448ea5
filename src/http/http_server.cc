#include "http/http_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include <openssl/ssl.h>

#include <spdlog/spdlog.h>

#include "http/http_flags.h"
#include "http/http_server_impl.h"

namespace mm {

namespace {

// Mozilla's "intermediate" TLS 1.2 suites (forward secret, AEAD only); TLS 1.3
// keeps OpenSSL's defaults, which are all of that kind.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// Fails naming the flag and the path when `path` cannot be opened for reading.
Status CheckReadable(std::string_view flag, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return InvalidArgument(std::string(flag) + " " + path + ": cannot read the file (" +
                           std::strerror(errno) + ")");
  }
  std::fclose(f);
  return OkStatus();
}

// The server's TLS settings from the PEM files in `options`; null when
// options.tls_cert_file is empty (plain HTTP).
StatusOr<std::unique_ptr<net::ssl::context>> MakeTlsContext(const HttpServer::Options& options) {
  const std::string& cert = options.tls_cert_file;
  const std::string& key = options.tls_key_file;
  const std::string& ca = options.tls_client_ca_file;
  if (cert.empty()) {
    if (!key.empty() || !ca.empty()) {
      return InvalidArgument(
          "--tls-key and --tls-client-ca need --tls-cert (the server's certificate)");
    }
    return std::unique_ptr<net::ssl::context>();
  }
  if (key.empty()) {
    return InvalidArgument("--tls-cert " + cert +
                           " needs --tls-key (the certificate's private key)");
  }
  MM_RETURN_IF_ERROR(CheckReadable("--tls-cert", cert));
  MM_RETURN_IF_ERROR(CheckReadable("--tls-key", key));
  if (!ca.empty()) MM_RETURN_IF_ERROR(CheckReadable("--tls-client-ca", ca));
  try {
    auto context = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    SSL_CTX* native = context->native_handle();
    context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                         net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                         net::ssl::context::no_tlsv1_1 | net::ssl::context::no_compression |
                         net::ssl::context::single_dh_use);
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
      return Internal("OpenSSL refused the TLS 1.2+ settings (is it older than 1.1.1?)");
    }
    // An encrypted key fails to load instead of prompting on the terminal.
    context->set_password_callback(
        [](size_t, net::ssl::context::password_purpose) { return std::string(); });
    beast::error_code ec;
    context->use_certificate_chain_file(cert, ec);
    if (ec) {
      return InvalidArgument("--tls-cert " + cert + ": not a PEM certificate chain (" +
                             ec.message() +
                             "); expected -----BEGIN CERTIFICATE----- blocks, the server's "
                             "certificate first, then its intermediates");
    }
    context->use_private_key_file(key, net::ssl::context::pem, ec);
    if (ec) {
      return InvalidArgument("--tls-key " + key +
                             ": not a PEM private key matching the certificate in --tls-cert " +
                             cert + " (" + ec.message() + ")");
    }
    if (SSL_CTX_check_private_key(native) != 1) {
      return InvalidArgument("--tls-key " + key + " does not match the certificate in --tls-cert " +
                             cert + "; expected the private key the certificate was issued for");
    }
    // Resumed sessions need an id context once client certificates are verified.
    static constexpr unsigned char kSessionContext[] = "mmserve";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
    if (!ca.empty()) {
      context->load_verify_file(ca, ec);
      if (ec) {
        return InvalidArgument("--tls-client-ca " + ca + ": not a PEM file of CA certificates (" +
                               ec.message() + "); expected -----BEGIN CERTIFICATE----- blocks");
      }
      // Tells clients which CAs' certificates the server accepts.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.c_str()); names != nullptr) {
        SSL_CTX_set_client_CA_list(native, names);
      }
      context->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert, ec);
      if (ec) return Internal("cannot ask TLS clients for certificates: " + ec.message());
    }
    return context;
  } catch (const boost::system::system_error& e) {
    return InvalidArgument("cannot set up TLS from --tls-cert " + cert + " and --tls-key " + key +
                           ": " + e.what());
  }
}

// ALPN for the native gRPC port: h2, which gRPC requires. A client that
// offers no h2 gets no ALPN answer (and then fails at the HTTP/2 preface).
int SelectH2(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* in,
             unsigned int in_size, void*) {
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_size, kH2, sizeof(kH2), in, in_size) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// ALPN for the HTTP port with --http2: h2 when the client offers it (as
// browsers and curl do), else http/1.1; a client that offers neither gets
// no ALPN answer and speaks HTTP/1.1.
int SelectH2OrHttp11(SSL*, const unsigned char** out, unsigned char* out_size,
                     const unsigned char* in, unsigned int in_size, void*) {
  static constexpr unsigned char kProtocols[] = {2,   'h', '2', 8,   'h', 't',
                                                 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_size, kProtocols, sizeof(kProtocols), in, in_size) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Binds and listens on address:port; fails naming what listens there.
Status Listen(Acceptor& acceptor, const std::string& address_text, uint16_t port,
              std::string_view what, std::string_view address_flag, uint16_t* bound) {
  beast::error_code ec;
  auto address = net::ip::make_address(address_text, ec);
  if (ec) {
    return InvalidArgument(std::string(address_flag) + " '" + address_text +
                           "' is not an IP address: " + ec.message());
  }
  net::ip::tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("cannot listen for " + std::string(what) + " on " + address_text + ":" +
                       std::to_string(port) + ": " + ec.message());
  }
  *bound = acceptor.local_endpoint().port();
  return OkStatus();
}

}  // namespace

Status HttpServer::Impl::Bind() {
  return Listen(acceptor_, options_.address, options_.port, "HTTP", "--http-address", &port_);
}

Status HttpServer::Impl::BindGrpc() {
  return Listen(grpc_acceptor_, options_.grpc.address, options_.grpc.port, "gRPC", "--grpc-address",
                &grpc_port_);
}

void HttpServer::Impl::Accept(Acceptor& acceptor, bool grpc) {
  EventLoop& loop = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  acceptor.async_accept(
      loop.context.get_executor(), [this, &acceptor, grpc](beast::error_code ec, Socket socket) {
        if (ec == net::error::operation_aborted || stopping()) return;
        if (!ec && !HasRoom()) {
          Refuse(std::move(socket), grpc);
        } else if (!ec) {
          socket.set_option(net::ip::tcp::no_delay(true), ec);
          if (grpc) {
            StartHttp2Session(this, std::move(socket), grpc_tls_.get());
          } else {
            StartSession(this, std::move(socket), tls_.get());
          }
        } else {
          spdlog::warn("{} accept failed: {}", grpc ? "gRPC" : "HTTP", ec.message());
        }
        Accept(acceptor, grpc);
      });
}

void HttpServer::Impl::Start() {
  Accept(acceptor_, false);
  if (options_.grpc.enabled) Accept(grpc_acceptor_, true);
  for (auto& loop : loops_) {
    loop->thread = std::thread([ctx = &loop->context] { ctx->run(); });
  }
}

bool HttpServer::Impl::HasRoom() {
  MutexLock lock(mu_);
  return sessions_.size() < options_.max_connections;
}

void HttpServer::Impl::Refuse(Socket socket, bool grpc) {
  // A plain HTTP/1.1 client gets a reason (one small write that the fresh
  // socket's buffer takes at once, never blocking); a TLS or gRPC one is
  // just closed.
  if (tls_ == nullptr && !grpc) {
    static constexpr std::string_view kBody =
        R"({"error":"the server has too many connections open; try again later"})";
    static const std::string kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nServer: mmserve\r\nContent-Type: application/json"
        "\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
        std::to_string(kBody.size()) + "\r\n\r\n" + std::string(kBody);
    [[maybe_unused]] const ssize_t n =
        ::send(socket.native_handle(), kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  beast::error_code ec;
  socket.close(ec);
  const uint64_t refused = ++refused_connections_;
  if ((refused & (refused - 1)) == 0) {  // 1, 2, 4, 8, ...: a flood does not flood the log
    spdlog::warn(
        "HTTP and gRPC: {} connection(s) refused so far: {} open, the limit "
        "(--max-connections)",
        refused, options_.max_connections);
  }
}

void HttpServer::Impl::Register(const std::shared_ptr<Connection>& c) {
  MutexLock lock(mu_);
  sessions_.emplace(c.get(), c);
}

void HttpServer::Impl::Unregister(Connection* c) {
  MutexLock lock(mu_);
  sessions_.erase(c);
  cv_.NotifyAll();
}

void HttpServer::Impl::Stop() {
  if (stopping_.exchange(true)) return;
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
    grpc_acceptor_.close(ec);
  });
  std::vector<std::shared_ptr<Connection>> live;
  {
    MutexLock lock(mu_);
    for (auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) s->Shutdown();
  live.clear();
  {
    MutexLock lock(mu_);
    // Connections finish what they were asked; say so when it takes a while.
    auto said = std::chrono::steady_clock::now();
    while (!sessions_.empty()) {
      cv_.WaitFor(lock, std::chrono::seconds(5));
      if (!sessions_.empty() &&
          std::chrono::steady_clock::now() - said >= std::chrono::seconds(5)) {
        spdlog::info("stopping: waiting for {} connection(s) to finish their requests",
                     sessions_.size());
        said = std::chrono::steady_clock::now();
      }
    }
  }
  in_flight_.WaitIdle();
  for (auto& loop : loops_) {
    loop->work.reset();
    loop->context.stop();
  }
  for (auto& loop : loops_) {
    if (loop->thread.joinable()) loop->thread.join();
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() {
  if (impl_) impl_->Stop();
}

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(Options options,
                                                         InferenceService* service) {
  if (options.threads == 0) options.threads = 1;
  MM_RETURN_IF_ERROR(ValidateHttpOptions(options));
  MM_ASSIGN_OR_RETURN(std::unique_ptr<net::ssl::context> tls, MakeTlsContext(options));
  if (tls != nullptr && options.http2) {
    SSL_CTX_set_alpn_select_cb(tls->native_handle(), &SelectH2OrHttp11, nullptr);
  }
  std::unique_ptr<net::ssl::context> grpc_tls;
  if (tls != nullptr && options.grpc.enabled) {
    MM_ASSIGN_OR_RETURN(grpc_tls, MakeTlsContext(options));
    SSL_CTX_set_alpn_select_cb(grpc_tls->native_handle(), &SelectH2, nullptr);
  }
  const bool grpc = options.grpc.enabled;
  auto impl = std::make_unique<Impl>(std::move(options), service);
  impl->set_tls(std::move(tls), std::move(grpc_tls));
  MM_RETURN_IF_ERROR(impl->Bind());
  if (grpc) MM_RETURN_IF_ERROR(impl->BindGrpc());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Start() { impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }
uint16_t HttpServer::grpc_port() const { return impl_->grpc_port(); }

}  // namespace mm
