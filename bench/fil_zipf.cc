// bench_fil_zipf: a light closed-loop HTTP/1.1 client that replays a model
// trace (bench/fil_many.py, issue 21's multi-model scenario).
//
//   bench_fil_zipf --port P --trace TRACE.i32 --body BODY.bin --header-length N
//                  [--name-format c%04d] [--concurrency 16] [--seconds 60]
//                  [--probe 1] [--expected EXPECTED.f32] --out RESULTS.bin
//
// One thread, epoll, CONCURRENCY keep-alive connections to 127.0.0.1:P. Each
// connection takes the next entry of the trace (int32 model indexes, issued
// in trace order), and
//   --probe 1: first asks GET /v2/models/NAME/ready (200: the model was
//              loaded at that moment, the request is classed a hit; else a
//              miss), then
//   POSTs BODY (a KServe v2 request with Triton's binary tensor extension;
//   Inference-Header-Content-Length N) to /v2/models/NAME/infer, timed from
//   the first byte written to the last byte of the answer read.
// No new request starts after SECONDS; the ones in flight finish. With
// --expected (FP32 p per model index), every answer must be 200 with a binary
// FP32 [1, 2] output equal to (1 - p, p) within 1e-6 relative; otherwise only
// the status is checked.
//
// RESULTS.bin: one record per request, in issue order (= trace order):
//   uint32 model, uint8 probe_ready (1: 200, 0: not, 2: no probe),
//   uint8 ok, uint16 http_status, float latency_us, double start_s
// (20 bytes, little endian, packed as Record below). On stdout, one
// line: FIL_ZIPF requests=N seconds=S rps=R errors=E exact=X client_cpu_s=C
// first_error="...".
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

#pragma pack(push, 1)
struct Record {
  uint32_t model;
  uint8_t probe_ready;
  uint8_t ok;
  uint16_t http_status;
  float latency_us;
  double start_s;
};
#pragma pack(pop)
static_assert(sizeof(Record) == 20);

struct Flags {
  int port = 0;
  std::string trace, body, expected, out;
  std::string name_format = "c%04d";
  long header_length = -1;
  int concurrency = 16;
  double seconds = 60;
  bool probe = true;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "bench_fil_zipf: %s\nusage: bench_fil_zipf --port P --trace TRACE.i32 --body "
               "BODY.bin --header-length N [--name-format c%%04d] [--concurrency C] [--seconds S] "
               "[--probe 0|1] [--expected EXPECTED.f32] --out RESULTS.bin\n",
               why);
  std::exit(2);
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "bench_fil_zipf: %s\n", what.c_str());
  std::exit(1);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage("a flag lacks its value");
      return argv[++i];
    };
    if (arg == "--port") {
      f.port = std::atoi(value());
    } else if (arg == "--trace") {
      f.trace = value();
    } else if (arg == "--body") {
      f.body = value();
    } else if (arg == "--header-length") {
      f.header_length = std::atol(value());
    } else if (arg == "--name-format") {
      f.name_format = value();
    } else if (arg == "--concurrency") {
      f.concurrency = std::atoi(value());
    } else if (arg == "--seconds") {
      f.seconds = std::atof(value());
    } else if (arg == "--probe") {
      f.probe = std::atoi(value()) != 0;
    } else if (arg == "--expected") {
      f.expected = value();
    } else if (arg == "--out") {
      f.out = value();
    } else {
      Usage("unknown argument");
    }
  }
  if (f.port <= 0 || f.trace.empty() || f.body.empty() || f.out.empty() || f.header_length < 0) {
    Usage("--port, --trace, --body, --header-length and --out are required");
  }
  if (f.concurrency < 1 || f.seconds <= 0) Usage("bad flag value");
  return f;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

enum class Phase { kIdle, kProbe, kInfer };

struct Conn {
  int fd = -1;
  Phase phase = Phase::kIdle;
  std::string out;  // bytes still to write
  size_t written = 0;
  std::string in;  // bytes read of the current answer
  size_t record = 0;
  Clock::time_point started;
};

// The value of header `name` (lower case) in an HTTP head, or -1.
long HeaderValue(std::string_view head, std::string_view name) {
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    if (head.size() - pos < name.size() + 1) break;
    bool match = true;
    for (size_t k = 0; k < name.size(); ++k) {
      if (std::tolower(static_cast<unsigned char>(head[pos + k])) != name[k]) {
        match = false;
        break;
      }
    }
    if (match && head[pos + name.size()] == ':') {
      return std::strtol(head.data() + pos + name.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

class Client {
 public:
  explicit Client(const Flags& f) : f_(f) {
    const std::string trace = ReadFile(f.trace);
    trace_.resize(trace.size() / 4);
    std::memcpy(trace_.data(), trace.data(), trace_.size() * 4);
    if (trace_.empty()) Fail("the trace is empty");
    body_ = ReadFile(f.body);
    if (!f.expected.empty()) {
      const std::string e = ReadFile(f.expected);
      expected_.resize(e.size() / 4);
      std::memcpy(expected_.data(), e.data(), expected_.size() * 4);
    }
    records_.reserve(std::min<size_t>(trace_.size(), 1 << 22));
    epoll_ = epoll_create1(0);
    if (epoll_ < 0) Fail("epoll_create1");
  }

  int Run() {
    begin_ = Clock::now();
    stop_at_ = begin_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(f_.seconds));
    conns_.resize(static_cast<size_t>(f_.concurrency));
    for (size_t i = 0; i < conns_.size(); ++i) {
      Connect(conns_[i], i);
      Next(conns_[i]);
    }
    std::vector<epoll_event> events(conns_.size());
    while (active_ > 0) {
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 1000);
      if (n < 0 && errno != EINTR) Fail(std::string("epoll_wait: ") + std::strerror(errno));
      for (int k = 0; k < n; ++k) {
        const epoll_event& e = events[static_cast<size_t>(k)];
        Ready(conns_[e.data.u64], e.events);
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - begin_).count();
    FILE* out = std::fopen(f_.out.c_str(), "wb");
    if (out == nullptr) Fail("cannot write " + f_.out);
    if (!records_.empty() &&
        std::fwrite(records_.data(), sizeof(Record), records_.size(), out) != records_.size()) {
      Fail("cannot write " + f_.out);
    }
    std::fclose(out);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    std::printf(
        "FIL_ZIPF requests=%zu seconds=%.3f rps=%.1f errors=%zu exact=%zu client_cpu_s=%.3f "
        "first_error=\"%s\"\n",
        records_.size(), seconds, static_cast<double>(records_.size()) / seconds, errors_, exact_,
        cpu, first_error_.c_str());
    return 0;
  }

 private:
  void Connect(Conn& c, size_t index) {
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0) Fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(f_.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Fail(std::string("connect: ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = index;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev) != 0) Fail("epoll_ctl");
    ++active_;
  }

  std::string Name(uint32_t model) const {
    char name[64];
    std::snprintf(name, sizeof(name), f_.name_format.c_str(), static_cast<int>(model));
    return name;
  }

  // Starts the connection's next request, or closes it at the deadline.
  void Next(Conn& c) {
    const auto now = Clock::now();
    if (now >= stop_at_ || next_ >= trace_.size()) {
      epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
      close(c.fd);
      c.fd = -1;
      --active_;
      return;
    }
    const uint32_t model = static_cast<uint32_t>(trace_[next_++]);
    c.record = records_.size();
    records_.push_back(
        Record{model, 2, 0, 0, 0, std::chrono::duration<double>(now - begin_).count()});
    if (f_.probe) {
      Send(c, Phase::kProbe,
           "GET /v2/models/" + Name(model) + "/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    } else {
      SendInfer(c);
    }
  }

  void SendInfer(Conn& c) {
    const std::string name = Name(records_[c.record].model);
    std::string req = "POST /v2/models/" + name +
                      "/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Inference-Header-Content-Length: " +
                      std::to_string(f_.header_length) +
                      "\r\nContent-Length: " + std::to_string(body_.size()) + "\r\n\r\n";
    req += body_;
    c.started = Clock::now();
    Send(c, Phase::kInfer, std::move(req));
  }

  void Send(Conn& c, Phase phase, std::string bytes) {
    c.phase = phase;
    c.out = std::move(bytes);
    c.written = 0;
    c.in.clear();
    Flush(c);
  }

  void Flush(Conn& c) {
    while (c.written < c.out.size()) {
      const ssize_t n = write(c.fd, c.out.data() + c.written, c.out.size() - c.written);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        Fail(std::string("write: ") + std::strerror(errno));
      }
      c.written += static_cast<size_t>(n);
    }
    // A blocking socket: write() returns once all is taken (requests are small).
    if (c.written < c.out.size()) Fail("short write on a blocking socket");
  }

  void Ready(Conn& c, uint32_t events) {
    if (c.fd < 0) return;
    char buf[65536];
    const ssize_t n = read(c.fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      Fail(std::string("read: ") + std::strerror(errno));
    }
    if (n == 0) Fail("the server closed a connection (events " + std::to_string(events) + ")");
    c.in.append(buf, static_cast<size_t>(n));
    const size_t head_end = c.in.find("\r\n\r\n");
    if (head_end == std::string::npos) return;
    const std::string_view head(c.in.data(), head_end + 2);
    const long length = HeaderValue(head, "content-length");
    if (length < 0) Fail("an answer without Content-Length");
    const size_t total = head_end + 4 + static_cast<size_t>(length);
    if (c.in.size() < total) return;
    if (c.in.size() > total) Fail("more bytes than one answer (pipelining is not used)");
    const int status = std::atoi(c.in.c_str() + 9);  // "HTTP/1.1 200"
    Record& r = records_[c.record];
    if (c.phase == Phase::kProbe) {
      r.probe_ready = status == 200 ? 1 : 0;
      SendInfer(c);
      return;
    }
    r.latency_us = static_cast<float>(
        std::chrono::duration<double, std::micro>(Clock::now() - c.started).count());
    r.http_status = static_cast<uint16_t>(status);
    std::string error;
    if (status != 200) {
      error = "HTTP " + std::to_string(status) + ": " + c.in.substr(head_end + 4, 300);
    } else if (!expected_.empty()) {
      const long json = HeaderValue(head, "inference-header-content-length");
      const size_t body_at = head_end + 4;
      if (json < 0 || static_cast<size_t>(length) != static_cast<size_t>(json) + 8) {
        error = "the answer is not a binary FP32 [1,2] output: " + c.in.substr(body_at, 300);
      } else if (r.model >= expected_.size()) {
        error = "no expected value for model " + std::to_string(r.model);
      } else {
        float y[2];
        std::memcpy(y, c.in.data() + body_at + static_cast<size_t>(json), sizeof(y));
        const float p = expected_[r.model];
        const bool close0 = std::fabs(y[0] - (1.0f - p)) <= 1e-6f * std::max(1.0f, 1.0f - p);
        const bool close1 = std::fabs(y[1] - p) <= 1e-6f * std::max(1.0f, p);
        if (!close0 || !close1) {
          error = Name(r.model) + ": got (" + std::to_string(y[0]) + ", " + std::to_string(y[1]) +
                  "), expected (1 - p, p) with p = " + std::to_string(p);
        } else if (y[1] == p) {
          ++exact_;
        }
      }
    }
    if (error.empty()) {
      r.ok = 1;
    } else {
      ++errors_;
      if (first_error_.empty()) {
        first_error_ = error;
        for (char& ch : first_error_) {
          if (ch == '"' || ch == '\n' || ch == '\r') ch = '\'';
        }
      }
    }
    Next(c);
  }

  const Flags& f_;
  std::vector<int32_t> trace_;
  std::string body_;
  std::vector<float> expected_;
  std::vector<Record> records_;
  std::vector<Conn> conns_;
  int epoll_ = -1;
  int active_ = 0;
  size_t next_ = 0;
  size_t errors_ = 0;
  size_t exact_ = 0;
  std::string first_error_;
  Clock::time_point begin_, stop_at_;
};

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  Client client(flags);
  return client.Run();
}
