// libFuzzer target for the HTTP/2 session without a socket: the session
// (http2_session.h) over a transport in memory, so that an input costs no
// connection, no kernel and no second thread, and the fuzzer runs many times
// faster than fuzz_http2_grpc, which goes through real sockets (and covers
// the HTTP/1.1 hand-over and TLS-free accept path this one skips).
//
// The input is what fuzz_http2_grpc takes (its corpus serves both): bytes
// after the HTTP/2 client preface, to the gRPC port's session, or, behind
// "REST", to the HTTP port's (REST over HTTP/2 to the router). Reads hand
// the session the bytes in pieces whose size the input's length picks, so
// frames arrive split where a network would split them; the session's
// writes are taken at once. The service behind it is fuzz/service_world.h's
// (an empty repository, one tenant): every call is answered on this thread,
// so one run of the event loop ends the input, with the session closed and
// gone. A session still alive after that is a leak of the test's making:
// the input fails.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "http/http2_session.h"
#include "http/http_server_impl.h"
#include "service_world.h"

namespace {

using mm::Executor;
using mm::HttpServer;
using mm::Socket;
namespace net = mm::net;
namespace beast = mm::beast;

class MemoryTransport final : public mm::http2_internal::Http2Session {
 public:
  MemoryTransport(HttpServer::Impl* server, bool rest, Executor executor, std::string input,
                  size_t piece)
      : Http2Session(server, rest, /*tls=*/false, executor),
        executor_(executor),
        socket_(executor),
        input_(std::move(input)),
        piece_(piece) {}

 private:
  std::shared_ptr<MemoryTransport> Self() {
    return std::static_pointer_cast<MemoryTransport>(shared_from_this());
  }

  void StartHandshake() override {}
  void StartRead(net::mutable_buffer buffer) override {
    const size_t n = std::min({buffer.size(), input_.size() - read_, piece_});
    std::memcpy(buffer.data(), input_.data() + read_, n);
    read_ += n;
    // As a socket completes a read: later, on the loop.
    net::post(executor_, [self = Self(), n] {
      self->OnRead(n > 0 ? beast::error_code() : beast::error_code(net::error::eof), n);
    });
  }
  void StartWrite(const std::vector<net::const_buffer>& buffers) override {
    net::post(executor_, [self = Self()] { self->OnWritten(beast::error_code()); });
  }
  Socket& Tcp() override { return socket_; }

  const Executor executor_;
  Socket socket_;  // never opened: Close's shutdown and close fail quietly
  const std::string input_;
  const size_t piece_;
  size_t read_ = 0;
};

struct World {
  World() {
    mm::fuzz::ServiceWorld* world = mm::fuzz::MakeServiceWorld("fuzz_http2_session");
    server = std::make_unique<HttpServer::Impl>(mm::fuzz::FuzzHttpOptions(), world->service.get());
  }
  std::unique_ptr<HttpServer::Impl> server;  // never started: its sessions are ours
  net::io_context loop{1};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World;
  const bool rest = size >= 4 && std::memcmp(data, "REST", 4) == 0;
  if (rest) {
    data += 4;
    size -= 4;
  }
  // The pieces reads hand over, from the input's length (so that the
  // corpus's inputs are fuzz_http2_grpc's as they are): whole buffers for
  // one length in four, else 1 to 251 bytes.
  const size_t piece = size % 4 == 0 ? size_t{64} << 10 : size % 251 + 1;
  static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string input(kPreface, sizeof(kPreface) - 1);
  input.append(reinterpret_cast<const char*>(data), size);

  std::weak_ptr<mm::http2_internal::Http2Session> gone;
  {
    auto session = std::make_shared<MemoryTransport>(
        world->server.get(), rest, world->loop.get_executor(), std::move(input), piece);
    gone = session;
    world->server->Register(session);
    session->Run();
  }
  world->loop.restart();
  world->loop.run();
  if (!gone.expired()) mm::fuzz::Die("fuzz_http2_session", "the session outlived its input");
  return 0;
}
