#include "isolation/worker_core_util.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/memory.h"
#include "isolation/worker_instance.h"
#include "isolation/worker_main.h"

namespace mm::isolation_internal {

using std::chrono::milliseconds;

namespace {
constexpr uint64_t kAlignment = 64;
uint64_t AlignUp(uint64_t v) { return (v + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

std::string Seconds(milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

void ServeAt(pid_t pid, int nice, const std::string& label) {
  static std::atomic<bool> warned{false};
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    const int tid = std::atoi(task.path().filename().c_str());
    if (tid > 0 && ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0 &&
        !warned.exchange(true)) {
      spdlog::warn(
          "{}: a worker cannot go from its loading priority to nice {} ({}); workers "
          "serve at their loading priority",
          label, nice, std::strerror(errno));
    }
  }
}

void SetSocketTimeouts(int socket, milliseconds receive, milliseconds send) {
  for (auto [option, d] : {std::pair{SO_RCVTIMEO, receive}, std::pair{SO_SNDTIMEO, send}}) {
    timeval tv{};
    tv.tv_sec = d.count() / 1000;
    tv.tv_usec = (d.count() % 1000) * 1000;
    ::setsockopt(socket, SOL_SOCKET, option, &tv, sizeof(tv));
  }
}

void WorkerGroup::Down(size_t index, const std::string& reason) {
  MutexLock lock(mu_);
  down_[index] = true;
  if (on_health_) on_health_(Unavailable(reason));
}

void WorkerGroup::Up(size_t index) {
  MutexLock lock(mu_);
  down_[index] = false;
  if (on_health_ && std::none_of(down_.begin(), down_.end(), [](bool d) { return d; })) {
    on_health_(OkStatus());
  }
}

uint64_t DescribeBatch(std::span<const InferRequest* const> requests, ExecuteRequest& execute) {
  const size_t n = requests.size();
  uint64_t end = 0;
  execute.requests.resize(n);
  for (size_t r = 0; r < n; ++r) {
    const InferRequest& request = *requests[r];
    ExecuteItem& item = execute.requests[r];
    item.id.assign(request.id);
    item.parameters.resize(request.parameters.size());
    auto param = item.parameters.begin();
    for (const auto& [key, value] : request.parameters) {
      param->first.assign(key);
      (param++)->second = value;
    }
    item.inputs.resize(request.inputs.size());
    for (size_t i = 0; i < request.inputs.size(); ++i) {
      const Tensor& in = request.inputs[i];
      ShmTensor& t = item.inputs[i];
      const uint64_t at = AlignUp(end);
      t.name.assign(in.name);
      t.dtype = in.dtype;
      t.shape.assign(in.shape.begin(), in.shape.end());
      t.offset = at;
      t.bytes = in.data.size();
      end = at + in.data.size();
    }
    item.outputs.resize(request.outputs.size());
    for (size_t i = 0; i < request.outputs.size(); ++i) {
      item.outputs[i].assign(request.outputs[i].name);
    }
  }
  execute.output_offset = AlignUp(end);
  return end;
}

void CopyInputs(std::span<const InferRequest* const> requests, const ExecuteRequest& execute,
                std::span<std::byte> region) {
  std::byte* base = region.data();
  for (size_t r = 0; r < requests.size(); ++r) {
    const InferRequest& request = *requests[r];
    for (size_t i = 0; i < request.inputs.size(); ++i) {
      const auto& data = request.inputs[i].data;
      if (!data.empty()) {
        std::memcpy(base + execute.requests[r].inputs[i].offset, data.data(), data.size());
      }
    }
  }
}

void TakeOutputs(ExecuteReply& reply, const std::shared_ptr<SharedRegion>& region, int64_t input_ns,
                 int64_t output_ns, std::span<InferResponse* const> responses,
                 std::span<Status> results) {
  const std::span<std::byte> bytes = region->bytes();
  for (size_t r = 0; r < responses.size(); ++r) {
    ExecuteResult& result = reply.results[r];
    InferResponse& response = *responses[r];
    response.timing.input_ns = input_ns + static_cast<int64_t>(reply.input_ns);
    response.timing.output_ns = output_ns;
    if (!result.status.ok()) {
      results[r] = std::move(result.status);
      continue;
    }
    results[r] = OkStatus();
    response.outputs.reserve(result.outputs.size());
    for (const ShmTensor& out : result.outputs) {
      Tensor t;
      t.name = out.name;
      t.dtype = out.dtype;
      t.shape = out.shape;
      t.data = bytes.subspan(out.offset, out.bytes);
      t.owner = region;
      response.outputs.push_back(std::move(t));
    }
  }
}

std::string DescribeExit(const WorkerExit& exit, const CgroupGroup* cgroup,
                         const std::string& killed_for, uint64_t memory_limit) {
  if (!killed_for.empty()) return "worker " + killed_for;
  if (exit.exit_code == kWorkerExitOutOfMemory) {
    return "worker killed: memory limit " + FormatBytes(memory_limit) +
           " (an allocation failed under " +
           std::string(MemoryLimitKindName(MemoryLimitKind::kAddressSpace)) + ")";
  }
  if (cgroup != nullptr && cgroup->OomKilled()) {
    return "worker killed: memory limit " + FormatBytes(memory_limit) + " (" +
           std::string(MemoryLimitKindName(MemoryLimitKind::kCgroupV2)) + ")";
  }
  if (exit.exit_code == kWorkerExitProtocolError) {
    return "worker " + exit.Describe() +
           ": it refused a malformed message from the server (its reason is in the log)";
  }
  return "worker " + exit.Describe();
}

}  // namespace mm::isolation_internal
