// libFuzzer target for the native gRPC transport's request path: any bytes,
// after the HTTP/2 client preface, are written to a real connection of the
// server's gRPC port, so they go through nghttp2 (frames, HPACK, flow
// control), the session's callbacks (headers, metadata limits, gRPC framing
// and compression) and the calls (protobuf decoding, the methods), as a
// client's would. The server behind it has one user tenant (key
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
#include <filesystem>
#include <memory>
#include <string>

#include "http/http_server.h"
#include "lifecycle/model_manager.h"
#include "scheduler/execution_slots.h"
#include "service/inference_service.h"
#include "tenancy/tenant_registry.h"

namespace {

struct World {
  mm::ExecutionSlots slots{mm::ExecutionSlotsOptions{.slots = 1}};
  mm::BackendRegistry backends;  // none: the repository is empty
  std::unique_ptr<mm::ModelManager> models;
  std::unique_ptr<mm::TenantRegistry> tenants;
  std::unique_ptr<mm::InferenceService> service;
  std::unique_ptr<mm::HttpServer> server;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz_http2_grpc: %s\n", what.c_str());
  std::abort();
}

World* MakeWorld() {
  auto* w = new World;
  const auto repo =
      std::filesystem::temp_directory_path() / ("mm-fuzz-http2-" + std::to_string(::getpid()));
  std::filesystem::create_directories(repo);
  mm::ModelManager::Options options;
  auto opened = mm::OpenModelRepository(repo.string());
  if (!opened.ok()) Die(opened.status().message());
  options.repositories.push_back(std::move(*opened));
  options.mode = mm::ModelControlMode::kExplicit;
  options.slots = &w->slots;
  options.backends = &w->backends;
  auto models = mm::ModelManager::Create(std::move(options));
  if (!models.ok()) Die(models.status().message());
  w->models = std::move(*models);
  mm::TenantsConfig config;
  mm::Tenant t;
  t.id = "fuzz";
  t.api_keys.push_back(*mm::ParseApiKeyHash(*mm::HashApiKey("fuzz-key-0123456789abcdef")));
  t.repositories = {repo.string()};
  config.tenants.push_back(std::move(t));
  w->tenants = mm::TenantRegistry::FromConfig(std::move(config));
  auto service =
      mm::InferenceService::Create({.models = w->models.get(), .tenants = w->tenants.get()});
  if (!service.ok()) Die(service.status().message());
  w->service = std::move(*service);
  mm::HttpServer::Options http;
  http.port = 0;
  http.threads = 1;
  http.max_request_bytes = 1 << 20;
  http.max_header_bytes = 4 << 10;
  http.grpc.enabled = true;
  http.grpc.port = 0;
  http.grpc.max_concurrent_streams = 16;
  http.grpc.stream_max_pending = 4;
  auto server = mm::HttpServer::Create(std::move(http), w->service.get());
  if (!server.ok()) Die(server.status().message());
  w->server = std::move(*server);
  w->server->Start();
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = MakeWorld();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(world->server->grpc_port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    Die("cannot connect to the gRPC port");
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
      Die("the server neither answered nor closed the connection within 20 s");
    }
    break;  // closed (or reset)
  }
  ::close(fd);
  return 0;
}
