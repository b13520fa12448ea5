#include "http/http_server.h"

#include <sys/socket.h>

#include <cerrno>
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

}  // namespace

Status HttpServer::Impl::Bind() {
  beast::error_code ec;
  auto address = net::ip::make_address(options_.address, ec);
  if (ec) {
    return InvalidArgument("--http-address '" + options_.address +
                           "' is not an IP address: " + ec.message());
  }
  net::ip::tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("cannot listen for HTTP on " + options_.address + ":" +
                       std::to_string(options_.port) + ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint().port();
  return OkStatus();
}

void HttpServer::Impl::Accept() {
  EventLoop& loop = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  acceptor_.async_accept(loop.context.get_executor(), [this](beast::error_code ec, Socket socket) {
    if (ec == net::error::operation_aborted || stopping()) return;
    if (!ec && !HasRoom()) {
      Refuse(std::move(socket));
    } else if (!ec) {
      socket.set_option(net::ip::tcp::no_delay(true), ec);
      StartSession(this, std::move(socket), tls_.get());
    } else {
      spdlog::warn("HTTP accept failed: {}", ec.message());
    }
    Accept();
  });
}

void HttpServer::Impl::Start() {
  Accept();
  for (auto& loop : loops_) {
    loop->thread = std::thread([ctx = &loop->context] { ctx->run(); });
  }
}

bool HttpServer::Impl::HasRoom() {
  MutexLock lock(mu_);
  return sessions_.size() < options_.max_connections;
}

void HttpServer::Impl::Refuse(Socket socket) {
  // A plain client gets a reason (one small write that the fresh socket's
  // buffer takes at once, never blocking); a TLS one is just closed.
  if (tls_ == nullptr) {
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
    spdlog::warn("HTTP: {} connection(s) refused so far: {} open, the limit (--max-connections)",
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
    while (!sessions_.empty()) cv_.Wait(lock);
  }
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
  auto impl = std::make_unique<Impl>(std::move(options), service);
  impl->set_tls(std::move(tls));
  MM_RETURN_IF_ERROR(impl->Bind());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Start() { impl_->Start(); }
void HttpServer::Stop() { impl_->Stop(); }
uint16_t HttpServer::port() const { return impl_->port(); }

}  // namespace mm
