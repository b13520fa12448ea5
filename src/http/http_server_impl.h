// Inside the HTTP server (http_server.h), shared by its two halves: the
// listener (http_server.cc: binding, accepting, the connection limit, shutdown)
// and the connections (http_session.cc: one Session per client, HTTP/1.1 on
// a plain or TLS stream). Not a door: nothing outside src/http includes it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/thread_annotations.h"
#include "http/asio.h"
#include "http/grpc_calls.h"
#include "http/http_server.h"
#include "http/router.h"
#include "rpc/in_flight.h"

namespace mm {

class Connection;

// One event loop per I/O thread (as nginx has one per worker): a connection
// lives on one loop for its whole life, so its handlers never need a strand
// and a reply posted from an execution thread wakes exactly one thread.
struct EventLoop {
  net::io_context context{1};
  // Keeps the thread running while every session waits on inference (no
  // pending socket operation): replies are posted to it later.
  net::executor_work_guard<net::io_context::executor_type> work{context.get_executor()};
  std::thread thread;
};

using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<net::ip::tcp, Executor>;
// Beast's wrapper of net::ssl::stream gathers a reply's head and body (up to
// 16 KiB) into one TLS record instead of writing a record per buffer.
using TlsStream = beast::ssl_stream<Socket>;
using Acceptor = net::basic_socket_acceptor<net::ip::tcp, Executor>;
using SteadyTimer =
    net::basic_waitable_timer<std::chrono::steady_clock,
                              net::wait_traits<std::chrono::steady_clock>, Executor>;

// The TCP socket under a connection's stream: waits, hang-up peeks,
// shutdown and close work on it for both kinds of connection.
inline Socket& Tcp(Socket& stream) { return stream; }
inline Socket& Tcp(TlsStream& stream) { return stream.next_layer(); }

class HttpServer::Impl {
 public:
  Impl(Options options, InferenceService* service)
      : options_(std::move(options)),
        service_(service),
        router_(service, options_.observer),
        grpc_env_{service, router_observer(), &in_flight_},
        loops_(MakeLoops(options_.threads)),
        acceptor_(loops_[0]->context.get_executor()),
        grpc_acceptor_(loops_[0]->context.get_executor()) {}

  Status Bind();
  // The native gRPC port's (options().grpc.enabled only).
  Status BindGrpc();
  void Start();
  void Stop() MM_EXCLUDES(mu_);
  uint16_t port() const { return port_; }
  uint16_t grpc_port() const { return grpc_port_; }

  const Options& options() const { return options_; }
  InferenceService* service() const { return service_; }
  const Router& router() const { return router_; }
  // What the native gRPC transport's calls reach the core through.
  const GrpcCallEnv& grpc_env() const { return grpc_env_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  // Null: plain HTTP. Set once by Create(), before Start(); the gRPC port's
  // context is the same certificate's, with ALPN h2.
  void set_tls(std::unique_ptr<net::ssl::context> tls, std::unique_ptr<net::ssl::context> grpc) {
    tls_ = std::move(tls);
    grpc_tls_ = std::move(grpc);
  }

  // Whether another connection may open (--max-connections, both ports); if
  // not, Refuse answers it 503 (plain HTTP/1.1) and closes it.
  bool HasRoom() MM_EXCLUDES(mu_);
  void Refuse(Socket socket, bool grpc);
  void Register(const std::shared_ptr<Connection>& c) MM_EXCLUDES(mu_);
  void Unregister(Connection* c) MM_EXCLUDES(mu_);

 private:
  static std::vector<std::unique_ptr<EventLoop>> MakeLoops(size_t n) {
    std::vector<std::unique_ptr<EventLoop>> loops;
    for (size_t i = 0; i < n; ++i) loops.push_back(std::make_unique<EventLoop>());
    return loops;
  }
  // Accepts the next connection on `acceptor` (HTTP/1.1 or native gRPC).
  void Accept(Acceptor& acceptor, bool grpc);
  const RequestObserver* router_observer() const {
    return options_.observer != nullptr && options_.observer->enabled() ? options_.observer
                                                                        : nullptr;
  }

  const Options options_;
  InferenceService* const service_;  // not owned
  const Router router_;
  rpc::InFlightCalls in_flight_;  // observed native gRPC calls (rpc::Observe)
  const GrpcCallEnv grpc_env_;
  const std::vector<std::unique_ptr<EventLoop>> loops_;
  // Shared by every TLS connection (OpenSSL's SSL_CTX is safe to share once set up).
  std::unique_ptr<net::ssl::context> tls_;
  std::unique_ptr<net::ssl::context> grpc_tls_;
  Acceptor acceptor_;       // on loops_[0]
  Acceptor grpc_acceptor_;  // on loops_[0]; open only with options_.grpc.enabled
  size_t next_loop_ = 0;    // touched by the accept handlers only (one thread)
  uint16_t port_ = 0;
  uint16_t grpc_port_ = 0;
  std::atomic<bool> stopping_{false};
  uint64_t refused_connections_ = 0;  // touched by the accept handler only

  Mutex mu_;
  CondVar cv_;  // signalled when a connection leaves sessions_
  // Open connections; an entry leaves when its Session is destroyed.
  std::unordered_map<Connection*, std::weak_ptr<Connection>> sessions_ MM_GUARDED_BY(mu_);
};

// What the server holds of a connection of either kind, to close it on shutdown.
class Connection {
 public:
  // An idle connection (or one in its TLS handshake) closes now, a busy one
  // after its reply. Any thread.
  virtual void Shutdown() = 0;

 protected:
  ~Connection() = default;
};

// A connection's place in the server's list, left when this is destroyed.
// A connection holds one as its first member, so that it leaves last, after
// its socket and timers are gone: the server's Stop waits for every
// connection to leave, then ends the event loops, whose services a socket or
// timer destroyed later (on an execution thread that held the connection's
// last reference) would still call.
class ConnectionRegistration {
 public:
  ConnectionRegistration(HttpServer::Impl* server, Connection* connection)
      : server_(server), connection_(connection) {}
  ~ConnectionRegistration() { server_->Unregister(connection_); }
  ConnectionRegistration(const ConnectionRegistration&) = delete;
  ConnectionRegistration& operator=(const ConnectionRegistration&) = delete;

 private:
  HttpServer::Impl* const server_;
  Connection* const connection_;
};

// "address:port" of a connection's client, for the log.
inline std::string PeerOf(Socket& socket) {
  beast::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "a closed connection";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

// A connection of kind `Kind` (Kind<Socket> or Kind<TlsStream>, constructed
// from the server, the socket and, for TLS, the context) over `socket`,
// registered with `server`, then run.
template <template <class> class Kind>
void StartConnection(HttpServer::Impl* server, Socket socket, net::ssl::context* tls) {
  if (tls != nullptr) {
    auto connection = std::make_shared<Kind<TlsStream>>(server, std::move(socket), *tls);
    server->Register(connection);
    connection->Run();
  } else {
    auto connection = std::make_shared<Kind<Socket>>(server, std::move(socket));
    server->Register(connection);
    connection->Run();
  }
}

// Starts serving a connection just accepted: a Session over `socket` (TLS
// when `tls` is not null), registered with `server`. On the accept handler's
// thread; the session then runs on the socket's event loop.
void StartSession(HttpServer::Impl* server, Socket socket, net::ssl::context* tls);
// The same for a connection to the native gRPC port: an Http2Session
// (http2_session.cc).
void StartHttp2Session(HttpServer::Impl* server, Socket socket, net::ssl::context* tls);
// Hands a connection of the HTTP port whose client speaks HTTP/2 (the h2c
// preface, or h2 chosen by ALPN) to an Http2Session serving REST: `stream`
// is past its TLS handshake and `received` is what was read of it already.
// On the connection's loop; the caller's Session lets go of the stream.
void StartHttp2Rest(HttpServer::Impl* server, Socket stream, std::string received);
void StartHttp2Rest(HttpServer::Impl* server, TlsStream stream, std::string received);

}  // namespace mm
