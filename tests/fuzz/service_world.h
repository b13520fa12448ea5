// The server a fuzz target talks to: an InferenceService over an empty
// repository (explicit control, no backends) with one user tenant, key
// "fuzz-key-0123456789abcdef" (in the seed corpora), so that every answer is
// synchronous and nothing touches the filesystem beyond a temporary folder.
// Made once per process and never freed (libFuzzer exits without unwinding).
#pragma once

#include <unistd.h>

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

namespace mm::fuzz {

struct ServiceWorld {
  ExecutionSlots slots{ExecutionSlotsOptions{.slots = 1}};
  BackendRegistry backends;  // none: the repository is empty
  std::unique_ptr<ModelManager> models;
  std::unique_ptr<TenantRegistry> tenants;
  std::unique_ptr<InferenceService> service;
};

[[noreturn]] inline void Die(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", target, what.c_str());
  std::abort();
}

// `target` names the fuzz target in its folder's name and in a set-up failure.
inline ServiceWorld* MakeServiceWorld(const char* target) {
  auto* w = new ServiceWorld;
  const auto repo = std::filesystem::temp_directory_path() /
                    (std::string("mm-") + target + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(repo);
  ModelManager::Options options;
  auto opened = OpenModelRepository(repo.string());
  if (!opened.ok()) Die(target, opened.status().message());
  options.repositories.push_back(std::move(*opened));
  options.mode = ModelControlMode::kExplicit;
  options.slots = &w->slots;
  options.backends = &w->backends;
  auto models = ModelManager::Create(std::move(options));
  if (!models.ok()) Die(target, models.status().message());
  w->models = std::move(*models);
  TenantsConfig config;
  Tenant t;
  t.id = "fuzz";
  t.api_keys.push_back(*ParseApiKeyHash(*HashApiKey("fuzz-key-0123456789abcdef")));
  t.repositories = {repo.string()};
  config.tenants.push_back(std::move(t));
  w->tenants = TenantRegistry::FromConfig(std::move(config));
  auto service = InferenceService::Create({.models = w->models.get(), .tenants = w->tenants.get()});
  if (!service.ok()) Die(target, service.status().message());
  w->service = std::move(*service);
  return w;
}

// The HTTP server's options of the HTTP/2 fuzz targets: one loop, small
// limits (1 MiB requests, 4 KiB of headers, 16 streams, 4 pending stream
// messages) that inputs reach; both ports on free ones.
inline HttpServer::Options FuzzHttpOptions() {
  HttpServer::Options http;
  http.port = 0;
  http.threads = 1;
  http.max_request_bytes = 1 << 20;
  http.max_header_bytes = 4 << 10;
  http.grpc.enabled = true;
  http.grpc.port = 0;
  http.grpc.max_concurrent_streams = 16;
  http.grpc.stream_max_pending = 4;
  return http;
}

}  // namespace mm::fuzz
