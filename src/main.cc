// mmserve: flags -> wiring. Nothing else lives here.
//
// Each room declares its flags beside its Options (<room>/<room>_flags.h) and
// validates them in its own Create; main parses them, creates the rooms bottom
// up the request path, waits for signals (SIGHUP reloads the tenants), and
// shuts down in order.
#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>
#include <thread>

#include "backends/backend_flags.h"
#include "backends/builtin_backends.h"
#include "cache/cache_flags.h"
#include "core/thread_annotations.h"
#include "ctl/ctl.h"
#include "grpc/grpc_flags.h"
#include "grpc/grpc_server.h"
#include "http/http_flags.h"
#include "http/http_server.h"
#include "isolation/isolation_flags.h"
#include "isolation/process_backend.h"
#include "isolation/worker_program.h"
#include "lifecycle/lifecycle_flags.h"
#include "lifecycle/model_manager.h"
#include "observability/custom_metrics.h"
#include "observability/logging.h"
#include "observability/metrics.h"
#include "observability/observability_flags.h"
#include "observability/request_observer.h"
#include "observability/tracer.h"
#include "scheduler/execution_slots.h"
#include "scheduler/scheduler_flags.h"
#include "scheduler/timer.h"
#include "service/drift_watch.h"
#include "service/inference_service.h"
#include "service/model_host_service.h"
#include "service/server_metrics.h"
#include "service/service_flags.h"
#include "service/shutdown_deadline.h"
#include "service/tenant_policy.h"
#include "tenancy/api_key.h"
#include "tenancy/tenancy_flags.h"

#ifndef MMSERVE_VERSION
#define MMSERVE_VERSION "0.1.0"
#endif

namespace {

int Fail(const mm::Status& status) {
  spdlog::critical("{}", status.message());
  return 1;
}

// `mmserve --worker MODEL`: a model's worker process, started by the server
// (isolation/worker_program.h), with every built-in backend, test ones
// included: the server chose the model.
int WorkerMain(int argc, char** argv) {
  return mm::WorkerProgramMain(argc, argv, &mm::RegisterBuiltinBackends, true);
}

// `mmserve hash-key SECRET`: prints the stored form of an API key for a
// tenants file (tenancy/api_key.h).
int HashKeyMain(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[2]).empty()) {
    std::fprintf(stderr,
                 "usage: mmserve hash-key SECRET\n"
                 "Prints the salted hash of the API key SECRET, for the api_keys of a tenant in "
                 "the --tenants file.\n");
    return 2;
  }
  const std::string_view secret = argv[2];
  if (secret.size() < 16) {
    std::fprintf(stderr,
                 "warning: a %zu-character key is short; use at least 16 random characters "
                 "(e.g. openssl rand -hex 24)\n",
                 secret.size());
  }
  auto hash = mm::HashApiKey(secret);
  if (!hash.ok()) return Fail(hash.status());
  std::printf("%s\n", hash->c_str());
  return 0;
}

// Every flag, by the room that declares it.
struct Flags {
  mm::LifecycleFlags lifecycle;
  mm::SchedulerFlags scheduler;
  mm::IsolationFlags isolation;
  std::string tenants_file;
  mm::ObservabilityFlags observability;
  mm::ServiceFlags service;
  mm::HttpServer::Options http;  // also the server's limits and TLS, shared with gRPC
  mm::GrpcServer::Options grpc;
  mm::GrpcTransport grpc_transport = mm::GrpcTransport::kNative;
  mm::BackendFlags backends;
  mm::CacheFlags cache;
  bool test_backends = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--worker") return WorkerMain(argc, argv);
  if (argc >= 2 && std::string_view(argv[1]) == "hash-key") return HashKeyMain(argc, argv);
  if (argc >= 2 && std::string_view(argv[1]) == "ctl") return mm::CtlMain(argc, argv);
  CLI::App app{"mmserve: a multi-model inference server (KServe v2 / Triton protocol)"};
  Flags flags;
  mm::AddLifecycleFlags(app, flags.lifecycle);
  mm::AddHttpFlags(app, flags.http);
  mm::AddGrpcFlags(app, flags.grpc, flags.grpc_transport);
  mm::AddSchedulerFlags(app, flags.scheduler);
  mm::AddServiceFlags(app, flags.service);
  mm::AddObservabilityFlags(app, flags.observability);
  mm::AddIsolationFlags(app, flags.isolation);
  mm::AddTenancyFlags(app, flags.tenants_file);
  mm::AddBackendFlags(app, flags.backends);
  mm::AddCacheFlags(app, flags.cache);
  app.add_flag("--enable-test-backends", flags.test_backends,
               "Offer the test-only backends of tests/backends: platform 'mmserve_chaos' "
               "(crashes, leaks and hangs on command; for process isolation tests) and "
               "backend 'mmserve_test_identity' (copies its inputs)")
      ->group("");
  CLI11_PARSE(app, argc, argv);

  const mm::LogFormat format = mm::ConfigureLoggingFromFlags(flags.observability);
  auto repositories = mm::OpenRepositories(flags.lifecycle);
  if (!repositories.ok()) return Fail(repositories.status());
  auto access = mm::OpenAccessLog(flags.observability, format);
  if (!access.ok()) return Fail(access.status());
  auto tracer = mm::CreateTracer(flags.observability);
  if (!tracer.ok()) return Fail(tracer.status());
  const mm::RequestObserver observer(tracer->get(), access->get());

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // reloads the tenants file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  mm::ExecutionSlots slots(flags.scheduler.slots);
  if (auto s = mm::ApplyTenantWeights(flags.scheduler.tenant_weights, slots); !s.ok()) {
    return Fail(s);
  }
  mm::BackendRegistry backends;
  if (auto s = mm::RegisterBuiltinBackends(backends); !s.ok()) return Fail(s);
  if (auto s = mm::ConfigureBackendsFromFlags(flags.backends, backends); !s.ok()) return Fail(s);
  if (flags.test_backends) {
    auto enabled = backends.EnableTestBackends();
    if (!enabled.ok()) return Fail(enabled.status().WithContext("--enable-test-backends"));
    spdlog::warn("test backends enabled: {}", *enabled);
  }
  if (auto s = backends.CreateAll(); !s.ok()) return Fail(s);
  // Models' own metrics (pb_utils.MetricFamily), on /metrics beside the
  // server's; destroyed after everything that may hold a model's host (the
  // workers' backend included).
  std::unique_ptr<mm::CustomMetrics> custom_metrics;
  if (flags.observability.allow_metrics) custom_metrics = std::make_unique<mm::CustomMetrics>();
  auto process_backend = mm::ProcessBackend::Create(
      mm::ProcessBackendOptions(flags.isolation, flags.scheduler.slots.nice));
  if (!process_backend.ok()) return Fail(process_backend.status());
  // Bounds the shutdown (armed at the signal); destroyed before the workers' backend.
  mm::ShutdownDeadline exit_deadline([backend = process_backend->get()] {
    backend->Shutdown("shutting down (the exit timeout passed)");
  });

  // The response cache, shared by every model that enables it; it outlives
  // the models (their scopes) and the service.
  auto cache_bytes = mm::ParseCacheConfig(flags.cache.configs);
  if (!cache_bytes.ok()) return Fail(cache_bytes.status());
  std::unique_ptr<mm::ResponseCache> response_cache;
  if (*cache_bytes > 0) {
    auto cache = mm::ResponseCache::Create({.capacity_bytes = *cache_bytes});
    if (!cache.ok()) return Fail(cache.status());
    response_cache = std::move(*cache);
    spdlog::info("response cache: local, {} bytes", *cache_bytes);
  }

  mm::ModelManager::Options manager_options;
  if (auto s = mm::ApplyLifecycleFlags(flags.lifecycle, manager_options); !s.ok()) return Fail(s);
  manager_options.response_cache = response_cache.get();
  auto tenants = mm::OpenTenantRegistry(flags.tenants_file);
  if (!tenants.ok()) return Fail(tenants.status());
  const mm::TenantPolicy tenant_policy(tenants->get(), &slots, flags.tenants_file,
                                       manager_options.memory_budget_bytes);
  tenant_policy.Apply();

  manager_options.repositories = std::move(*repositories);
  manager_options.slots = &slots;
  manager_options.owner_of = tenant_policy.OwnerOf();
  manager_options.scheduler.inline_max_ns = flags.scheduler.inline_max_us * 1000;
  // Answers requests at their queue deadlines.
  mm::Timer queue_timer(mm::SteadyClock::Get(), /*with_thread=*/true);
  manager_options.scheduler.timer = &queue_timer;
  manager_options.backends = &backends;
  manager_options.process_backend = process_backend->get();
  manager_options.default_process_isolation = flags.isolation.default_process_isolation();
  // Each model version's host (BLS calls, custom metrics) speaks through the
  // service, which exists once the manager does (no load starts before).
  auto host_service = std::make_shared<mm::HostedService>();
  manager_options.host_factory = mm::ModelHostFactory(host_service, custom_metrics.get());
  auto manager = mm::ModelManager::Create(std::move(manager_options));
  if (!manager.ok()) return Fail(manager.status());

  mm::InferenceService::Options service_options = flags.service.service;
  service_options.models = manager->get();
  service_options.server_name = "mmserve";
  service_options.server_version = MMSERVE_VERSION;
  service_options.tenants = tenants->get();
  service_options.response_cache = response_cache.get();
  auto service = mm::InferenceService::Create(std::move(service_options));
  if (!service.ok()) return Fail(service.status());
  host_service->Open(service->get());
  // Closed as main returns, before the service is destroyed (declared after
  // it): a worker's BLS call then is refused, not a use of a freed service.
  const std::unique_ptr<mm::HostedService, void (*)(mm::HostedService*)> close_hosts(
      host_service.get(), [](mm::HostedService* hosted) { hosted->Close(); });

  std::unique_ptr<mm::DriftWatch> drift_watch;
  if (flags.lifecycle.drift) {
    drift_watch = std::make_unique<mm::DriftWatch>(
        service->get(), std::chrono::milliseconds(flags.lifecycle.drift_check_ms));
  }
  std::unique_ptr<mm::MetricsServer> metrics;
  if (flags.observability.allow_metrics) {
    auto started = mm::MetricsServer::Create(
        flags.observability.metrics,
        {mm::ServerMetricsCollector(service->get(), &slots), mm::CollectProcessMetrics,
         [&observer](mm::MetricFamilies& out) { observer.Collect(out); },
         [metrics = custom_metrics.get()](mm::MetricFamilies& out) { metrics->Collect(out); }});
    if (!started.ok()) return Fail(started.status());
    metrics = std::move(*started);
    spdlog::info("metrics at http://{}:{}/metrics", flags.observability.metrics.address,
                 metrics->port());
  }

  // The same limits and certificate on both transports; the HTTP server
  // checks the files first.
  const mm::HttpServer::Options& http_options = flags.http;
  const std::string& tls_cert = http_options.tls_cert_file;
  const std::string& tls_client_ca = http_options.tls_client_ca_file;
  const std::string_view tls_mode = tls_cert.empty()        ? ""
                                    : tls_client_ca.empty() ? " with TLS"
                                                            : " with mutual TLS";
  flags.http.observer = &observer;
  const bool native_grpc = flags.grpc_transport == mm::GrpcTransport::kNative;
  if (native_grpc) {
    mm::Status valid = mm::ValidateGrpcOptions(flags.grpc);
    if (!valid.ok()) return Fail(valid);
    flags.http.grpc.enabled = true;
    flags.http.grpc.address = flags.grpc.address;
    flags.http.grpc.port = flags.grpc.port;
    flags.http.grpc.max_concurrent_streams = flags.grpc.max_concurrent_streams;
    flags.http.grpc.stream_max_pending = flags.grpc.stream_max_pending;
  }
  auto http = mm::HttpServer::Create(http_options, service->get());
  if (!http.ok()) return Fail(http.status());
  (*http)->Start();
  // Live while loading; ready once every model had its chance to load.
  spdlog::info("HTTP server listening on {}:{}{}", http_options.address, (*http)->port(), tls_mode);
  std::unique_ptr<mm::GrpcServer> grpc;
  if (native_grpc) {
    spdlog::info("gRPC server listening on {}:{}{} (native HTTP/2 transport)", flags.grpc.address,
                 (*http)->grpc_port(), tls_mode);
  } else {
    mm::GrpcServer::Options grpc_options = flags.grpc;
    grpc_options.max_message_bytes = http_options.max_request_bytes;
    grpc_options.max_metadata_bytes = http_options.max_header_bytes;
    grpc_options.read_timeout_ms = http_options.read_timeout_ms;
    grpc_options.tls_cert_file = tls_cert;
    grpc_options.tls_key_file = http_options.tls_key_file;
    grpc_options.tls_client_ca_file = tls_client_ca;
    grpc_options.observer = &observer;
    auto started = mm::GrpcServer::Start(grpc_options, service->get());
    if (!started.ok()) {
      (*http)->Stop();
      return Fail(started.status());
    }
    grpc = std::move(*started);
    spdlog::info("gRPC server listening on {}:{}{}", grpc_options.address, grpc->port(), tls_mode);
  }
  if (!tls_cert.empty()) {
    spdlog::info("TLS on for HTTP and gRPC (1.2 and 1.3): certificate {}, key {}", tls_cert,
                 http_options.tls_key_file);
    if (!tls_client_ca.empty()) {
      spdlog::info("mutual TLS on: clients need a certificate signed by a CA in {}", tls_client_ca);
    }
  }
  // Start-up loads (mode none or poll, --load-model) run beside the signal
  // loop, so that SIGTERM during them stops them within --exit-timeout-secs
  // like any other load. Ready only if they finish before a shutdown begins.
  struct {
    mm::Mutex mu;
    bool stopping MM_GUARDED_BY(mu) = false;
  } ready;
  std::thread startup([&] {
    const mm::Status started = (*manager)->Start();
    mm::MutexLock lock(ready.mu);
    if (ready.stopping) return;
    if (!started.ok() && flags.lifecycle.strict_readiness) {
      spdlog::error("{}; not ready (--strict-readiness): /v2/health/ready answers 400",
                    started.message());
      return;
    }
    if (!started.ok()) spdlog::warn("{}", started.message());
    (*service)->SetReady(true);
    spdlog::info("mmserve is ready");
  });

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    tenant_policy.Reload((*service)->shared_memory());
  }
  const int64_t exit_timeout_secs = flags.service.exit_timeout_secs;
  spdlog::info(
      "received {}, shutting down: finishing in-flight requests (for at most {} s, "
      "--exit-timeout-secs)",
      sig == SIGINT ? "SIGINT" : "SIGTERM", exit_timeout_secs);
  exit_deadline.Arm(std::chrono::seconds(exit_timeout_secs), std::chrono::milliseconds(1000));
  {
    mm::MutexLock lock(ready.mu);
    ready.stopping = true;
    (*service)->SetReady(false);
  }
  // Loading stops first (warmups under way stop, requests waiting for a load
  // get an error), so that no request waits for a load while the transports
  // drain; it has the exit timeout's time. A backend load that never returns
  // is abandoned with the process.
  if (!(*manager)->Shutdown(std::chrono::steady_clock::now() +
                            std::chrono::seconds(exit_timeout_secs))) {
    spdlog::warn("mmserve stopped without waiting for model loads still running");
    spdlog::default_logger()->flush();
    std::_Exit(1);
  }
  startup.join();  // (its loads were answered by the lifecycle's shutdown)
  // Both transports stop accepting at once, then drain.
  std::thread grpc_stop([&grpc] {
    if (grpc != nullptr) grpc->Stop();
  });
  (*http)->Stop();
  grpc_stop.join();
  slots.Shutdown();
  if (exit_deadline.expired()) {
    spdlog::warn("mmserve stopped after its exit timeout; work in flight was cancelled");
    return 1;
  }
  spdlog::info("mmserve stopped");
  return 0;
}
