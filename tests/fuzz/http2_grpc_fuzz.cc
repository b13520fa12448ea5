// libFuzzer target for the HTTP/2 transport's request path: any bytes,
// after the HTTP/2 client preface, are written to a real connection of the
// server's gRPC port, so they go through nghttp2 (frames, HPACK, flow
// control), the session's callbacks (headers, metadata limits, gRPC framing
// and compression) and the calls (protobuf decoding, the methods), as a
// client's would. An input that begins with "REST" goes, without those four
// bytes, to the HTTP port instead: REST over h2c (the HTTP/1.1 session's
// hand-over, the REST streams, the router). The server behind it has one user tenant (key
// "fuzz-key-0123456789abcdef", in the seed corpus) and an empty repository,
// so every call is answered at once. Each input is one connection: written,
// half-closed, and read until the server closes it; a server that stops
// answering fails the input (SO_RCVTIMEO), a memory error is the sanitizer's.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "http/http_server.h"
#include "service_world.h"

namespace {

mm::HttpServer* MakeServer() {
  mm::fuzz::ServiceWorld* world = mm::fuzz::MakeServiceWorld("fuzz_http2_grpc");
  auto server = mm::HttpServer::Create(mm::fuzz::FuzzHttpOptions(), world->service.get());
  if (!server.ok()) mm::fuzz::Die("fuzz_http2_grpc", server.status().message());
  (*server)->Start();
  return server->release();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static mm::HttpServer* server = MakeServer();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) mm::fuzz::Die("fuzz_http2_grpc", "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  const bool rest = size >= 4 && std::memcmp(data, "REST", 4) == 0;
  if (rest) {
    data += 4;
    size -= 4;
  }
  address.sin_port = htons(rest ? server->port() : server->grpc_port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    mm::fuzz::Die("fuzz_http2_grpc", "cannot connect to the gRPC port");
  }
  timeval timeout{.tv_sec = 20, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string bytes(kPreface, sizeof(kPreface) - 1);
  bytes.append(reinterpret_cast<const char*>(data), size);
  // The server may close before it has read everything (a protocol error):
  // a failed send is an answer too.
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  char sink[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, sink, sizeof(sink), 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      mm::fuzz::Die("fuzz_http2_grpc",
                    "the server neither answered nor closed the connection within 20 s");
    }
    break;  // closed (or reset)
  }
  ::close(fd);
  return 0;
}
