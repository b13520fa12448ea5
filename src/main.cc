// mmserve: flags -> wiring. Nothing else lives here.
#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "backends/chaos/chaos_backend.h"
#include "backends/onnxruntime/onnxruntime_backend.h"
#include "core/memory.h"
#include "grpc/grpc_server.h"
#include "http/http_server.h"
#include "isolation/process_backend.h"
#include "isolation/worker_main.h"
#include "isolation/worker_process.h"
#include "lifecycle/model_manager.h"
#include "observability/logging.h"
#include "observability/metrics.h"
#include "observability/request_observer.h"
#include "observability/tracer.h"
#include "scheduler/execution_slots.h"
#include "scheduler/timer.h"
#include "service/drift_watch.h"
#include "service/inference_service.h"
#include "service/server_metrics.h"
#include "tenancy/api_key.h"
#include "tenancy/tenant_registry.h"

#ifndef MMSERVE_VERSION
#define MMSERVE_VERSION "0.1.0"
#endif

namespace {

int Fail(const mm::Status& status) {
  spdlog::critical("{}", status.message());
  return 1;
}

// "team-a=2" -> ("team-a", 2); false when malformed.
bool ParseTenantWeight(const std::string& text, std::string* tenant, double* weight) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) return false;
  const char* begin = text.c_str() + eq + 1;
  char* end = nullptr;
  *weight = std::strtod(begin, &end);
  *tenant = text.substr(0, eq);
  return end == text.c_str() + text.size();
}

// The shutdown's deadline (--exit-timeout-secs). Arm() starts the clock when
// the shutdown begins; if the shutdown has not finished (the destructor) when
// it runs out, `cancel` runs (on this object's thread: it kills the workers,
// which answers their requests), and if the shutdown still has not finished
// a grace period later, the process exits at once with status 1 (a worker
// dies with the server, PR_SET_PDEATHSIG). expired() says whether the clock
// ran out. Construct it after what `cancel` touches: it is destroyed first.
class ShutdownDeadline {
 public:
  explicit ShutdownDeadline(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ~ShutdownDeadline() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void Arm(std::chrono::seconds timeout, std::chrono::milliseconds grace) {
    thread_ = std::thread([this, timeout, grace] {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, timeout, [&] { return done_; })) return;
      expired_.store(true);
      spdlog::warn(
          "the exit timeout of {} s (--exit-timeout-secs) passed with work in flight: "
          "cancelling it (workers killed, their requests answered UNAVAILABLE)",
          timeout.count());
      lock.unlock();
      cancel_();
      lock.lock();
      if (cv_.wait_for(lock, grace, [&] { return done_; })) return;
      spdlog::error("mmserve did not finish stopping {} ms after its exit timeout: exiting now",
                    grace.count());
      spdlog::default_logger()->flush();
      ::_exit(1);
    });
  }
  bool expired() const { return expired_.load(); }

 private:
  const std::function<void()> cancel_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::atomic<bool> expired_{false};
  std::thread thread_;
};

// `mmserve --worker MODEL`: a model's worker process, started by the server
// with its control socket as descriptor 3 (isolation/worker_main.h).
int WorkerMain(int argc, char** argv) {
  // The server's --log-format reaches its workers through the environment.
  const char* format = std::getenv("MMSERVE_LOG_FORMAT");
  mm::ConfigureLogging(format != nullptr && std::string_view(format) == "json"
                           ? mm::LogFormat::kJson
                           : mm::LogFormat::kText,
                       std::string("worker ") + (argc > 2 ? argv[2] : "?"));
  // Ctrl-C reaches the whole process group: the server decides when its
  // workers end (they die with it, or when it closes their socket).
  signal(SIGINT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  auto onnx = mm::OnnxRuntimeBackend::Create({});
  if (!onnx.ok()) return Fail(onnx.status());
  mm::ChaosBackend chaos;
  std::map<std::string, mm::Backend*, std::less<>> backends{{"onnxruntime_onnx", onnx->get()},
                                                            {mm::ChaosBackend::kPlatform, &chaos}};
  return mm::RunWorker(mm::WorkerProcess::kWorkerSocketFd, backends);
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

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--worker") return WorkerMain(argc, argv);
  if (argc >= 2 && std::string_view(argv[1]) == "hash-key") return HashKeyMain(argc, argv);
  CLI::App app{"mmserve: a multi-model inference server (KServe v2 / Triton protocol)"};
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string> repositories;
  std::string http_address = "127.0.0.1";
  uint16_t http_port = 8000;
  std::string grpc_address = "127.0.0.1";
  uint16_t grpc_port = 8001;
  size_t http_threads = cores;
  size_t grpc_threads = cores;
  size_t grpc_stream_max_pending = 32;
  uint32_t grpc_max_concurrent_streams = 1024;
  size_t execution_threads = cores;
  size_t max_request_bytes = 64ull << 20;
  size_t max_tensors_per_request = 1024;
  size_t max_header_bytes = 16 << 10;
  uint32_t read_timeout_ms = 60'000;
  size_t max_connections = 4096;
  int64_t max_elements_per_tensor = int64_t{1} << 30;
  size_t max_shm_regions_per_tenant = 128;
  std::string log_level = "info";
  std::string control_mode = "none";
  std::vector<std::string> load_models;
  std::optional<bool> load_on_demand;
  double poll_secs = 15;
  std::string memory_budget = "0";
  size_t load_threads = std::max<size_t>(1, cores / 2);
  std::string eviction_policy = "lfu";
  int64_t inline_max_us = 100;
  std::vector<std::string> tenant_weights;
  int execution_nice = 5;
  std::string default_isolation = "in_process";
  int64_t worker_timeout_ms = 0;
  double worker_start_timeout_secs = 60;
  int64_t exit_timeout_secs = 30;
  int64_t worker_backoff_ms = 1000;
  int64_t worker_max_backoff_ms = 30000;
  uint64_t worker_mailbox_bytes = 64u << 10;
  bool test_backends = false;
  std::string tenants_file;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  uint32_t tls_handshake_timeout_ms = 10'000;
  bool allow_metrics = true;
  std::string metrics_address = "127.0.0.1";
  uint16_t metrics_port = 8002;
  std::string log_format = "text";
  std::string access_log;
  double trace_rate = 0;
  std::string trace_endpoint;
  std::string trace_file;
  size_t trace_buffer = 4096;
  int64_t trace_flush_ms = 1000;
  bool drift = true;
  double drift_sample_rate = 0.01;
  uint64_t drift_window_rows = 10000;
  double drift_threshold = 0.2;
  // With 10 bins, a window of n rows drawn from the baseline itself has a PSI
  // of about 9/n give or take 4/n: at 1000 rows, far below any threshold.
  uint64_t drift_min_rows = 1000;
  int64_t drift_check_ms = 1000;

  app.add_option("--model-repository", repositories, "Model repository folder (repeatable)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--http-address", http_address, "Address the HTTP server listens on")
      ->capture_default_str();
  app.add_option("--http-port", http_port, "HTTP port (0 picks a free one)")->capture_default_str();
  app.add_option("--grpc-address", grpc_address, "Address the gRPC server listens on")
      ->capture_default_str();
  app.add_option("--grpc-port", grpc_port, "gRPC port (0 picks a free one)")->capture_default_str();
  app.add_option("--http-threads", http_threads, "HTTP I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--grpc-threads", grpc_threads,
                 "gRPC completion-queue threads (each decodes, runs and answers ModelInfer calls)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--grpc-stream-max-pending", grpc_stream_max_pending,
                 "Per ModelStreamInfer stream: requests in flight plus responses not yet "
                 "written, at most; at the bound the stream stops reading until a write "
                 "completes")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--grpc-max-concurrent-streams", grpc_max_concurrent_streams,
                 "gRPC calls open at once on one connection (HTTP/2 "
                 "SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--execution-slots,--execution-threads", execution_threads,
                 "Model executions at once, shared by all models by weighted fair share "
                 "across tenants, then models (each slot has a thread)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--execution-nice", execution_nice,
                 "Nice value of the execution threads above the I/O threads (0-19): on a busy "
                 "CPU, decoding requests and writing answers then preempt long executions "
                 "(model loads run at 10)")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  app.add_option("--tenant-weight", tenant_weights,
                 "TENANT=WEIGHT: the tenant's share of the execution slots against other "
                 "tenants (repeatable; default 1; a model's tenant is mmserve.tenant in its "
                 "config, else 'shared')");
  app.add_option("--inline-execution-max-us", inline_max_us,
                 "Run a request of at most 64 KiB on the I/O thread, skipping the hop to an "
                 "execution thread, when its model averages at most this many microseconds "
                 "and a slot is idle (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{10'000}));
  app.add_option("--max-request-bytes", max_request_bytes,
                 "Largest request body accepted (413 above it)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 40));
  app.add_option("--max-header-bytes", max_header_bytes,
                 "Largest request head: HTTP header fields (431 above it), gRPC metadata")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 20));
  app.add_option("--read-timeout-ms", read_timeout_ms,
                 "Slow and idle clients: an HTTP request's head must arrive within it (keep-alive "
                 "idle time included), its body and reply at 64 KiB/s or more beyond it; a gRPC "
                 "connection must finish its handshake within it and is closed after that long "
                 "without a call")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{100}, uint32_t{3'600'000}));
  app.add_option("--max-connections", max_connections,
                 "Open HTTP connections at most; one more gets 503 and is closed")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  app.add_option("--max-tensors-per-request", max_tensors_per_request,
                 "Most tensors (inputs plus requested outputs) one inference request may name")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-elements-per-tensor", max_elements_per_tensor,
                 "Most elements one input tensor may have (its shape's product)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 62));
  app.add_option("--max-shm-regions-per-tenant", max_shm_regions_per_tenant,
                 "Most system shared memory regions one tenant may have registered at once")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 16));
  app.add_option("--allow-metrics", allow_metrics,
                 "Serve Prometheus metrics at /metrics on --metrics-port (no API key asked: "
                 "they name models and tenants; bind them where only operators reach)")
      ->capture_default_str();
  app.add_option("--metrics-address", metrics_address, "Address the metrics endpoint listens on")
      ->capture_default_str();
  app.add_option("--metrics-port", metrics_port, "Metrics port (0 picks a free one)")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "Log lines as text, or as JSON objects (one per line)")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--access-log", access_log,
                 "Write one line per inference request (id, tenant, model, version, status, "
                 "durations) to this file, or - for standard output; in --log-format");
  app.add_option("--trace-rate", trace_rate,
                 "Fraction of requests without a W3C traceparent that are traced (a request "
                 "with one follows its sampled flag); needs --trace-endpoint or --trace-file")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--trace-endpoint", trace_endpoint,
                 "OTLP/HTTP JSON collector for traces, e.g. http://127.0.0.1:4318/v1/traces");
  app.add_option("--trace-file", trace_file,
                 "Append traces to this file instead, one OTLP JSON export request per line");
  app.add_option("--trace-buffer", trace_buffer,
                 "Traces waiting for export at most; more are dropped (and counted)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--trace-flush-ms", trace_flush_ms, "Longest wait before traces are exported")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->group("");
  app.add_option("--drift", drift,
                 "Watch the inputs of models that ship a drift_baseline.json for drift (PSI per "
                 "input feature, in the metrics and the model's statistics)")
      ->capture_default_str();
  app.add_option("--drift-sample-rate", drift_sample_rate,
                 "Fraction of requests whose inputs go into the drift window")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1.0));
  app.add_option("--drift-window-rows", drift_window_rows,
                 "Rows of each input the drift window holds (it slides by a tenth)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{10}, uint64_t{1'000'000'000}));
  app.add_option("--drift-psi-threshold", drift_threshold,
                 "PSI above which an input feature is reported as drifted (logged when crossed)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1e6));
  app.add_option("--drift-check-ms", drift_check_ms,
                 "How often loaded models' drift is checked against the threshold (and crossings "
                 "logged) when nobody reads the metrics")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3'600'000}))
      ->group("");
  app.add_option("--drift-min-rows", drift_min_rows,
                 "Rows a feature needs in the window before its PSI is reported (fewer give a "
                 "noisy PSI, and false alarms)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error (the last one given)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--model-control-mode", control_mode,
                 "none: load every model at start; explicit: load --load-model models at start, "
                 "then through the repository API and on demand; poll: load every model and "
                 "follow the repositories' changes")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "explicit", "poll"}));
  app.add_option("--load-model", load_models,
                 "Model to load at start in explicit mode (repeatable; * for all)");
  app.add_option("--load-on-demand", load_on_demand,
                 "Load a model at its first request (explicit mode; default true there)");
  app.add_option("--repository-poll-secs", poll_secs, "Poll mode: seconds between scans")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 86400.0));
  app.add_option("--model-memory-budget", memory_budget,
                 "Memory for loaded models, in bytes (512MiB, 4GiB, ...) or a percentage of RAM "
                 "(50%); idle models are evicted least recently used first to stay under it "
                 "(0: unlimited)")
      ->capture_default_str();
  app.add_option("--model-eviction-policy", eviction_policy,
                 "Which idle models leave first to fit the budget: lfu (fewest uses per byte, "
                 "decaying; ties least recently used) or lru (least recently used)")
      ->capture_default_str()
      ->check(CLI::IsMember({"lfu", "lru"}));
  app.add_option("--model-load-threads", load_threads,
                 "Models one tenant loads in parallel at most (loads are fair across tenants)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  mm::ServerLimits model_limits;  // one model's instances and threads (model_config.h)
  app.add_option("--max-instances-per-model", model_limits.max_instances_per_model,
                 "Instances one model may ask for, over its instance groups (a config asking "
                 "more fails to load)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, mm::ConfigBounds::kMaxInstances));
  app.add_option("--max-threads-per-model", model_limits.max_threads_per_model,
                 "Runtime threads one model may ask for: instances x (intra_op_thread_count + "
                 "inter_op_thread_count), unset counting 1 and 0 one per core (a config asking "
                 "more fails to load)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--default-isolation", default_isolation,
                 "Where models run unless their config says (mmserve { isolation }): in_process, "
                 "or process (each instance in a worker process of its own: a crash, a memory "
                 "limit or a hang takes down only that model, which restarts)")
      ->capture_default_str()
      ->check(CLI::IsMember({"in_process", "process"}));
  app.add_option("--worker-execution-timeout-ms", worker_timeout_ms,
                 "Models in worker processes: a batch running longer is killed with its worker, "
                 "which restarts (0: no limit; mmserve { execution_timeout_ms } overrides it)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{86'400'000}));
  app.add_option("--worker-start-timeout-secs", worker_start_timeout_secs,
                 "Models in worker processes: a worker must start and load its model within "
                 "this long, else it is killed (the load fails; a restart is retried)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86'400.0));
  app.add_option("--exit-timeout-secs", exit_timeout_secs,
                 "On SIGTERM/SIGINT, wait this long for in-flight requests; then kill the "
                 "workers, answer their requests UNAVAILABLE and exit (status 1)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{86'400}));
  app.add_option("--worker-restart-backoff-ms", worker_backoff_ms,
                 "Models in worker processes: wait before the first restart of a failed worker, "
                 "doubling with each failure in a row")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}));
  app.add_option("--worker-max-restart-backoff-ms", worker_max_backoff_ms,
                 "The longest wait between restarts of a failed worker")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86'400'000}));
  app.add_option("--tenants", tenants_file,
                 "Tenants file (YAML): tenants, their API keys (from `mmserve hash-key SECRET`), "
                 "repositories, roles, weights and quotas; without it the server runs open. "
                 "SIGHUP re-reads it")
      ->check(CLI::ExistingFile);
  CLI::Option* tls_cert_option =
      app.add_option("--tls-cert", tls_cert,
                     "Server certificate chain (PEM, the server's certificate first): HTTP and "
                     "gRPC then speak TLS (1.2 or 1.3) only")
          ->check(CLI::ExistingFile);
  CLI::Option* tls_key_option =
      app.add_option("--tls-key", tls_key, "Private key of --tls-cert (PEM, not encrypted)")
          ->check(CLI::ExistingFile);
  tls_cert_option->needs(tls_key_option);
  tls_key_option->needs(tls_cert_option);
  app.add_option("--tls-client-ca", tls_client_ca,
                 "CA certificates (PEM) for mutual TLS: HTTP and gRPC clients must present a "
                 "certificate signed by one of them")
      ->check(CLI::ExistingFile)
      ->needs(tls_cert_option);
  app.add_option("--tls-handshake-timeout-ms", tls_handshake_timeout_ms,
                 "HTTP: a TLS connection whose handshake has not finished by then is closed")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{1}, uint32_t{600'000}))
      ->group("");
  app.add_option("--worker-mailbox-bytes", worker_mailbox_bytes,
                 "Size of each worker's mailbox; requests and replies larger than half of it "
                 "go through the worker's socket (for tests)")
      ->capture_default_str()
      ->group("");
  app.add_flag("--enable-test-backends", test_backends,
               "Offer the test-only 'mmserve_chaos' platform (crashes, leaks and hangs on "
               "command; for process isolation tests)")
      ->group("");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  const mm::LogFormat format = log_format == "json" ? mm::LogFormat::kJson : mm::LogFormat::kText;
  mm::ConfigureLogging(format);
  if (format == mm::LogFormat::kJson) setenv("MMSERVE_LOG_FORMAT", "json", 1);  // for workers

  std::unique_ptr<mm::AccessLog> access;
  if (!access_log.empty()) {
    auto opened = mm::AccessLog::Create(access_log, format);
    if (!opened.ok()) return Fail(opened.status());
    access = std::move(*opened);
  }
  auto tracer = mm::Tracer::Create({.rate = trace_rate,
                                    .endpoint = trace_endpoint,
                                    .file = trace_file,
                                    .buffer_capacity = trace_buffer,
                                    .flush_interval = std::chrono::milliseconds(trace_flush_ms)});
  if (!tracer.ok()) return Fail(tracer.status().WithContext("tracing (--trace-*)"));
  if ((*tracer)->Enabled()) {
    spdlog::info(
        "tracing {} of requests without a traceparent (and those whose parent is "
        "sampled) to {}",
        trace_rate, trace_endpoint.empty() ? trace_file : trace_endpoint);
  }
  const mm::RequestObserver observer(tracer->get(), access.get());

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // reloads the tenants file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  mm::ExecutionSlots slots({.slots = execution_threads, .nice = execution_nice});
  for (const std::string& tw : tenant_weights) {
    std::string tenant;
    double weight = 0;
    if (!ParseTenantWeight(tw, &tenant, &weight)) {
      return Fail(mm::InvalidArgument("--tenant-weight '" + tw +
                                      "': expected TENANT=WEIGHT, e.g. team-a=2"));
    }
    if (auto s = slots.SetTenantWeight(tenant, weight); !s.ok()) {
      return Fail(s.WithContext("--tenant-weight"));
    }
  }
  auto onnx = mm::OnnxRuntimeBackend::Create({});
  if (!onnx.ok()) return Fail(onnx.status());
  mm::ChaosBackend chaos;
  if (worker_max_backoff_ms < worker_backoff_ms) {
    return Fail(mm::InvalidArgument(
        "--worker-max-restart-backoff-ms must be at least --worker-restart-backoff-ms"));
  }
  mm::ProcessBackend::Options process_options;
  // The server's own binary, even if the file was replaced since it started.
  process_options.worker_command = {"/proc/self/exe", "--worker"};
  process_options.execution_timeout = std::chrono::milliseconds(worker_timeout_ms);
  process_options.start_timeout = std::chrono::milliseconds(
      std::max<int64_t>(1, std::llround(worker_start_timeout_secs * 1000)));
  process_options.restart_backoff = std::chrono::milliseconds(worker_backoff_ms);
  process_options.max_restart_backoff = std::chrono::milliseconds(worker_max_backoff_ms);
  process_options.mailbox_bytes = worker_mailbox_bytes;
  process_options.serve_nice = execution_nice;
  if (worker_mailbox_bytes < mm::ProcessBackend::kMinMailboxBytes ||
      worker_mailbox_bytes > mm::ProcessBackend::kMaxMailboxBytes) {
    return Fail(mm::InvalidArgument("--worker-mailbox-bytes " +
                                    std::to_string(worker_mailbox_bytes) + ": expected " +
                                    std::to_string(mm::ProcessBackend::kMinMailboxBytes) + " to " +
                                    std::to_string(mm::ProcessBackend::kMaxMailboxBytes)));
  }
  auto process_backend = mm::ProcessBackend::Create(process_options);
  if (!process_backend.ok()) return Fail(process_backend.status());
  // Bounds the shutdown (armed at the signal); destroyed before the workers' backend.
  ShutdownDeadline exit_deadline([backend = process_backend->get()] {
    backend->Shutdown("shutting down (the exit timeout passed)");
  });

  auto budget = mm::ParseByteSize(memory_budget, mm::PhysicalMemoryBytes());
  if (!budget.ok()) return Fail(budget.status().WithContext("--model-memory-budget"));
  std::unique_ptr<mm::TenantRegistry> tenants;
  if (tenants_file.empty()) {
    tenants = mm::TenantRegistry::Open();
    spdlog::warn(
        "no --tenants file: the server runs open, every request is the one default tenant "
        "(admin), no API key is asked for");
  } else {
    auto loaded = mm::TenantRegistry::FromFile(tenants_file);
    if (!loaded.ok()) return Fail(loaded.status().WithContext("--tenants"));
    tenants = std::move(*loaded);
    spdlog::info(
        "tenants from {}: {} tenants; every request but the health checks needs an "
        "API key (SIGHUP re-reads the file)",
        tenants_file, tenants->config()->tenants.size());
  }
  // The tenants file's weights share the execution slots among tenants (over
  // --tenant-weight for the same tenant); a reload applies its new weights.
  // Memory shares are only guaranteed while they fit the budget together.
  auto apply_tenants = [&slots, budget = *budget](const mm::TenantsConfig& config) {
    uint64_t shares = 0;
    for (const mm::Tenant& t : config.tenants) shares += t.quotas.memory_bytes;
    if (budget > 0 && shares > budget) {
      spdlog::warn(
          "the tenants' memory_bytes quotas add up to {} bytes, over --model-memory-budget ({} "
          "bytes): a tenant's share is not guaranteed",
          shares, budget);
    }
    for (const mm::Tenant& t : config.tenants) {
      if (auto s = slots.SetTenantWeight(t.id, t.weight); !s.ok()) {
        spdlog::error("tenant '{}': weight not applied: {}", t.id, s.message());
      } else if (t.weight != 1) {
        spdlog::info("tenant '{}' has weight {} in the execution slots' fair share", t.id,
                     t.weight);
      }
    }
  };
  apply_tenants(*tenants->config());

  mm::ModelManager::Options manager_options;
  manager_options.mode = control_mode == "explicit" ? mm::ModelControlMode::kExplicit
                         : control_mode == "poll"   ? mm::ModelControlMode::kPoll
                                                    : mm::ModelControlMode::kNone;
  manager_options.startup_models = load_models;
  manager_options.load_on_demand =
      load_on_demand.value_or(manager_options.mode == mm::ModelControlMode::kExplicit);
  if (manager_options.load_on_demand && manager_options.mode != mm::ModelControlMode::kExplicit) {
    return Fail(mm::InvalidArgument("--load-on-demand needs --model-control-mode explicit"));
  }
  manager_options.poll_interval = std::chrono::milliseconds(static_cast<int64_t>(poll_secs * 1000));
  manager_options.memory_budget_bytes = *budget;
  manager_options.eviction =
      eviction_policy == "lru" ? mm::EvictionPolicy::kLru : mm::EvictionPolicy::kLfu;
  manager_options.load_threads = load_threads;
  manager_options.limits = model_limits;
  for (const auto& r : repositories) {
    auto opened = mm::OpenModelRepository(r);
    if (!opened.ok()) return Fail(opened.status());
    manager_options.repositories.push_back(std::move(*opened));
  }
  manager_options.slots = &slots;
  // A model's fair-share tenant is the tenant owning its repository, whose
  // model quotas hold its loads.
  manager_options.owner_of = [registry = tenants.get()](std::string_view repository) {
    mm::ModelOwner owner;
    if (auto tenant = registry->OwnerOf(repository)) {
      owner.tenant = tenant->id;
      owner.max_loaded_models = tenant->quotas.max_loaded_models;
      owner.memory_bytes = tenant->quotas.memory_bytes;
    }
    return owner;
  };
  manager_options.scheduler.inline_max_ns = inline_max_us * 1000;
  // Answers requests at their queue deadlines.
  mm::Timer queue_timer(mm::SteadyClock::Get(), /*with_thread=*/true);
  manager_options.scheduler.timer = &queue_timer;
  manager_options.backends.emplace("onnxruntime_onnx", onnx->get());
  if (test_backends) {
    spdlog::warn("test backends enabled: platform '{}' crashes, leaks and hangs on command",
                 mm::ChaosBackend::kPlatform);
    manager_options.backends.emplace(mm::ChaosBackend::kPlatform, &chaos);
  }
  manager_options.drift = drift;
  manager_options.drift_options.sample_every =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(1.0 / drift_sample_rate)));
  manager_options.drift_options.window_rows = drift_window_rows;
  manager_options.drift_options.threshold = drift_threshold;
  {
    // The window keeps this many rows right after it slides; a feature
    // needs no more than that to be reported.
    const auto& d = manager_options.drift_options;
    const uint64_t kept = (d.sub_windows - 1) * (d.window_rows / d.sub_windows) + 1;
    if (drift_min_rows > kept) {
      if (app.count("--drift-min-rows") > 0) {
        return Fail(mm::InvalidArgument(
            "--drift-min-rows " + std::to_string(drift_min_rows) + " is more than a window of " +
            "--drift-window-rows " + std::to_string(drift_window_rows) + " keeps as it slides (" +
            std::to_string(kept) + "); lower it or widen the window"));
      }
      drift_min_rows = kept;
    }
  }
  manager_options.drift_options.min_rows = drift_min_rows;
  manager_options.process_backend = process_backend->get();
  manager_options.default_process_isolation = default_isolation == "process";
  auto manager = mm::ModelManager::Create(std::move(manager_options));
  if (!manager.ok()) return Fail(manager.status());

  auto service =
      mm::InferenceService::Create({.models = manager->get(),
                                    .server_name = "mmserve",
                                    .server_version = MMSERVE_VERSION,
                                    .tenants = tenants.get(),
                                    .max_tensors_per_request = max_tensors_per_request,
                                    .max_elements_per_tensor = max_elements_per_tensor,
                                    .max_shm_regions_per_tenant = max_shm_regions_per_tenant});
  if (!service.ok()) return Fail(service.status());

  std::unique_ptr<mm::DriftWatch> drift_watch;
  if (drift) {
    drift_watch =
        std::make_unique<mm::DriftWatch>(service->get(), std::chrono::milliseconds(drift_check_ms));
  }
  std::unique_ptr<mm::MetricsServer> metrics;
  if (allow_metrics) {
    auto started = mm::MetricsServer::Create(
        {.address = metrics_address, .port = metrics_port},
        {mm::ServerMetricsCollector(service->get()), mm::CollectProcessMetrics,
         [&observer](mm::MetricFamilies& out) { observer.Collect(out); }});
    if (!started.ok()) return Fail(started.status());
    metrics = std::move(*started);
    spdlog::info("metrics at http://{}:{}/metrics", metrics_address, metrics->port());
  }

  // The same certificate on both transports; the HTTP server checks the files first.
  const std::string_view tls_mode = tls_cert.empty()        ? ""
                                    : tls_client_ca.empty() ? " with TLS"
                                                            : " with mutual TLS";

  mm::HttpServer::Options http_options;
  http_options.address = http_address;
  http_options.port = http_port;
  http_options.threads = http_threads;
  http_options.max_request_bytes = max_request_bytes;
  http_options.max_header_bytes = max_header_bytes;
  http_options.read_timeout_ms = read_timeout_ms;
  http_options.max_connections = max_connections;
  http_options.tls_cert_file = tls_cert;
  http_options.tls_key_file = tls_key;
  http_options.tls_client_ca_file = tls_client_ca;
  http_options.tls_handshake_timeout_ms = tls_handshake_timeout_ms;
  http_options.observer = &observer;
  auto http = mm::HttpServer::Create(http_options, service->get());
  if (!http.ok()) return Fail(http.status());
  (*http)->Start();
  // Live while loading; ready once every model had its chance to load.
  spdlog::info("HTTP server listening on {}:{}{}", http_address, (*http)->port(), tls_mode);
  mm::GrpcServer::Options grpc_options;
  grpc_options.address = grpc_address;
  grpc_options.port = grpc_port;
  grpc_options.max_message_bytes = max_request_bytes;
  grpc_options.max_metadata_bytes = max_header_bytes;
  grpc_options.read_timeout_ms = read_timeout_ms;
  grpc_options.threads = grpc_threads;
  grpc_options.stream_max_pending = grpc_stream_max_pending;
  grpc_options.max_concurrent_streams = grpc_max_concurrent_streams;
  grpc_options.tls_cert_file = tls_cert;
  grpc_options.tls_key_file = tls_key;
  grpc_options.tls_client_ca_file = tls_client_ca;
  grpc_options.observer = &observer;
  auto grpc = mm::GrpcServer::Start(grpc_options, service->get());
  if (!grpc.ok()) {
    (*http)->Stop();
    return Fail(grpc.status());
  }
  spdlog::info("gRPC server listening on {}:{}{}", grpc_address, (*grpc)->port(), tls_mode);
  if (!tls_cert.empty()) {
    spdlog::info("TLS on for HTTP and gRPC (1.2 and 1.3): certificate {}, key {}", tls_cert,
                 tls_key);
    if (!tls_client_ca.empty()) {
      spdlog::info("mutual TLS on: clients need a certificate signed by a CA in {}", tls_client_ca);
    }
  }
  // Start-up loads (mode none or poll, --load-model) run beside the signal
  // loop, so that SIGTERM during them stops them within --exit-timeout-secs
  // like any other load. Ready only if they finish before a shutdown begins.
  std::mutex ready_mu;
  bool stopping = false;  // guarded by ready_mu
  std::thread startup([&] {
    (*manager)->Start();
    std::lock_guard<std::mutex> lock(ready_mu);
    if (stopping) return;
    (*service)->SetReady(true);
    spdlog::info("mmserve is ready");
  });

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    if (tenants->open()) {
      spdlog::warn("SIGHUP: no --tenants file to re-read (the server runs open)");
    } else if (mm::Status s = tenants->Reload(); !s.ok()) {
      spdlog::error("SIGHUP: the tenants file was not reloaded, the tenants in force stay: {}",
                    s.message());
    } else {
      apply_tenants(*tenants->config());
      // A removed tenant's shared memory regions go with it.
      std::vector<std::string> ids;
      for (const mm::Tenant& t : tenants->config()->tenants) ids.push_back(t.id);
      (*service)->shared_memory().RetainOwners(ids);
      spdlog::info("SIGHUP: tenants reloaded from {}: {} tenants", tenants_file,
                   tenants->config()->tenants.size());
    }
  }
  spdlog::info(
      "received {}, shutting down: finishing in-flight requests (for at most {} s, "
      "--exit-timeout-secs)",
      sig == SIGINT ? "SIGINT" : "SIGTERM", exit_timeout_secs);
  exit_deadline.Arm(std::chrono::seconds(exit_timeout_secs), std::chrono::milliseconds(1000));
  {
    std::lock_guard<std::mutex> lock(ready_mu);
    stopping = true;
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
  std::thread grpc_stop([&grpc] { (*grpc)->Stop(); });
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
