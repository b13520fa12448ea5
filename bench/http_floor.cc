// bench_http_floor: what Boost.Beast and Asio themselves cost per HTTP/1.1
// request on this machine, the floor under mmserve's HTTP transport. One
// thread, keep-alive, mmserve's reading pattern (a request parser with a
// string body read into a flat buffer, then one gathered write of a head
// and a body), answering every request 200 with a fixed body of BYTES
// bytes: no routing, no decoding, no model. bench/send_cost.sh runs it
// beside nginx and mmserve.
//
//   bench_http_floor PORT_FILE BYTES   (listens on a free 127.0.0.1 port,
//                                       writes it to PORT_FILE, serves until
//                                       SIGTERM)
#include <utility>  // before Asio (src/http/asio.h says why)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const std::string* head, const std::string* body)
      : socket_(std::move(socket)), head_(head), body_(body) {}

  void Read() {
    parser_.emplace();
    parser_->body_limit(64 << 20);
    bhttp::async_read(socket_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return;  // the client closed (or sent garbage): done
                        self->Write();
                      });
  }

 private:
  void Write() {
    keep_alive_ = parser_->get().keep_alive();
    parser_.reset();
    const std::array<net::const_buffer, 2> buffers = {net::buffer(*head_), net::buffer(*body_)};
    net::async_write(socket_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || !self->keep_alive_) return;
      self->Read();
    });
  }

  tcp::socket socket_;
  const std::string* const head_;
  const std::string* const body_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = true;
};

void Accept(tcp::acceptor& acceptor, const std::string& head, const std::string& body) {
  acceptor.async_accept([&](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    socket.set_option(tcp::no_delay(true));
    std::make_shared<Session>(std::move(socket), &head, &body)->Read();
    Accept(acceptor, head, body);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PORT_FILE BYTES\n", argv[0]);
    return 2;
  }
  const long bytes = std::strtol(argv[2], nullptr, 10);
  if (bytes < 0 || bytes > (64 << 20)) {
    std::fprintf(stderr, "BYTES: expected 0 to 64 MiB, got '%s'\n", argv[2]);
    return 2;
  }
  const std::string body(static_cast<size_t>(bytes), 'x');
  const std::string head =
      "HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Length: " + std::to_string(bytes) +
      "\r\nContent-Type: application/octet-stream\r\n\r\n";
  net::io_context io(1);
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  std::ofstream(argv[1]) << acceptor.local_endpoint().port() << "\n";
  net::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](beast::error_code, int) { io.stop(); });
  Accept(acceptor, head, body);
  io.run();
  return 0;
}
