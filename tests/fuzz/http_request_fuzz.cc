// libFuzzer target for the HTTP request head (and what the router does with
// it): any bytes go through the server's own parser type with its limits,
// pipelined requests one after another, then ReadRequestHead and the Router,
// as a connection would. The server behind it has one user tenant (key
// "fuzz-key-0123456789abcdef", in the seed corpus) and an empty repository,
// so every answer is synchronous and nothing touches the filesystem beyond it.
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory_resource>
#include <optional>
#include <string>

#include "http/request_head.h"
#include "http/router.h"
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
  std::unique_ptr<mm::Router> router;
};

[[noreturn]] void Die(const mm::Status& s) {
  std::fprintf(stderr, "fuzz_http_request: set-up failed: %s\n", s.message().c_str());
  std::abort();
}

World* MakeWorld() {
  auto* w = new World;
  const auto repo =
      std::filesystem::temp_directory_path() / ("mm-fuzz-http-" + std::to_string(::getpid()));
  std::filesystem::create_directories(repo);
  mm::ModelManager::Options options;
  auto opened = mm::OpenModelRepository(repo.string());
  if (!opened.ok()) Die(opened.status());
  options.repositories.push_back(std::move(*opened));
  options.mode = mm::ModelControlMode::kExplicit;
  options.slots = &w->slots;
  options.backends = &w->backends;
  auto models = mm::ModelManager::Create(std::move(options));
  if (!models.ok()) Die(models.status());
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
  if (!service.ok()) Die(service.status());
  w->service = std::move(*service);
  w->router = std::make_unique<mm::Router>(w->service.get());
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = MakeWorld();
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
    world->router->Handle(view, [&replies](mm::HttpReply) { ++replies; });
    if (replies != 1) __builtin_trap();  // every request is answered once, synchronously here
  }
  return 0;
}
