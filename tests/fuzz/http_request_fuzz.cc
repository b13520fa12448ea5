// libFuzzer target for the HTTP request head (and what the router does with
// it): any bytes go through the server's own parser type with its limits,
// pipelined requests one after another, then ReadRequestHead and the Router,
// as a connection would, against the service of service_world.h (so every
// answer is synchronous).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <string>

#include "http/request_head.h"
#include "http/router.h"
#include "service_world.h"

namespace {

struct World {
  mm::fuzz::ServiceWorld* base = mm::fuzz::MakeServiceWorld("fuzz_http_request");
  mm::Router router{base->service.get()};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::array<std::byte, 2048> inline_buffer;
  std::pmr::monotonic_buffer_resource arena(inline_buffer.data(), inline_buffer.size());
  std::string target, authorization;
  mm::TenantRegistry::Memo memo;  // the connection's, across its pipelined requests
  for (int request = 0; request < 8 && !input.empty(); ++request) {
    arena.release();
    std::optional<mm::RequestParser> parser;
    parser.emplace(std::piecewise_construct, std::make_tuple(),
                   std::make_tuple(mm::RequestAllocator(&arena)));
    parser->eager(true);
    parser->body_limit(1 << 20);
    parser->header_limit(16 << 10);
    mm::beast::error_code ec;
    const size_t used = parser->put(mm::net::buffer(input.data(), input.size()), ec);
    input.remove_prefix(std::min(used, input.size()));
    if (ec || !parser->is_done()) return 0;  // malformed or incomplete: the server answers 400
    mm::RequestMessage& message = parser->get();
    mm::HttpRequestView view;
    if (!mm::ReadRequestHead(message, view, target, authorization).ok()) continue;
    view.body = std::make_shared<const std::string>(std::move(message.body()));
    view.auth_memo = &memo;
    size_t replies = 0;
    world->router.Handle(view, [&replies](mm::HttpReply) { ++replies; });
    if (replies != 1) __builtin_trap();  // every request is answered once, synchronously here
  }
  return 0;
}
