// HttpServer: HTTP/1.1 over Boost.Beast, a fixed set of I/O threads, one
// strand per connection, keep-alive and pipelining (requests on a connection
// are answered in order). No thread per request: inference completes on an
// execution thread and posts its reply back to the connection's strand.
//
// Shutdown contract: Stop() stops accepting, closes idle connections, lets
// every request already received finish and be written, then joins the I/O
// threads. Safe to call once, from any thread that is not an I/O thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "service/inference_service.h"

namespace mm {

class HttpServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 8000;  // 0: pick a free port (see port())
    size_t threads = 2;
    size_t max_request_bytes = 64 << 20;
    size_t max_header_bytes = 16 << 10;
  };

  // Binds and listens; fails with a message naming the address when it cannot.
  static StatusOr<std::unique_ptr<HttpServer>> Create(Options options, InferenceService* service);
  ~HttpServer();

  void Start();
  void Stop();
  uint16_t port() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mm
