#!/usr/bin/env python3
"""Summarizes `perf script -F tid,period,ip,sym,dso` of an mmserve profile.

Reads the script output on stdin (a cpu-clock profile with call graphs, see
bench/profile.sh) and prints markdown tables of where mmserve's CPU time goes:

  1. by request-path stage: each sample is charged to the stage marker
     nearest its leaf (so a futex wake inside ThreadPool::Submit counts as the
     hop to the execution thread, a malloc inside the JSON decoder as
     decoding), with the kernel's share of each stage;
  2. by thread: HTTP I/O threads, execution threads, others;
  3. kernel time by system call;
  4. self time by library and by function (the top ones).

With --requests N, times are also given in CPU µs per request.
"""
import argparse
import collections
import re
import sys

# Stage markers, most specific first within a stack walk from the leaf. The
# first marker found walking from the leaf toward the root names the stage.
STAGES = [
    ("ONNX Runtime Session::Run", re.compile(r"Ort::detail::SessionImpl<.*>::Run\b|^OrtApis::Run")),
    ("OrtInstance: wrap inputs, read outputs", re.compile(r"OrtInstance::(Run|Execute)")),
    ("request decode (simdjson + RequestDecoder)", re.compile(r"mm::DecodeInferRequest")),
    ("response encode (JSON writer)", re.compile(r"mm::EncodeInferResponse|EncodeOutputs")),
    ("request validation", re.compile(r"mm::ValidateRequest")),
    ("model lookup (ModelManager::Get)", re.compile(r"mm::ModelManager::Get\b")),
    ("hop to execution thread (ThreadPool::Submit)", re.compile(r"mm::ThreadPool::Submit")),
    ("execution thread: wait for / pick up work", re.compile(r"mm::ThreadPool::Loop")),
    ("scheduler bookkeeping (ModelScheduler)", re.compile(r"mm::ModelScheduler::")),
    ("hop back to I/O strand (post reply)", re.compile(r"OnRead.*lambda|boost::asio::detail::(scheduler|strand_executor_service)::(post|do_dispatch|enqueue)|strand_executor_service::invoker|executor_op<.*HttpReply")),
    ("response write (Session::Write, send)", re.compile(r"mm::Session::Write|reactive_socket_send_op|write_op<")),
    ("routing (Router::Handle)", re.compile(r"mm::Router::Handle|mm::\(anonymous namespace\)::HandleInfer")),
    ("HTTP read + parse (Beast, recv)", re.compile(r"boost::beast::http::|reactive_socket_recv_op|mm::Session::(OnRead|Read)\b")),
    ("connection/session lifetime", re.compile(r"mm::Session::|mm::HttpServer::Impl::(Accept|Register|Unregister)")),
    ("I/O thread: event loop (epoll, wakeups)", re.compile(r"boost::asio::detail::(epoll_reactor|scheduler)::")),
]

SYSCALL = re.compile(r"^(?:__x64_sys_|__ia32_sys_|__sys_|__do_sys_|ksys_)(\w+)")
# Kernel samples with no syscall frame (e.g. preemption on the way out of a
# syscall that woke a thread on this CPU) are charged by the user-side caller.
USER_SYSCALL = [
    ("sendmsg/writev", re.compile(r"sendmsg|writev|__libc_write|\bsend\b")),
    ("recvmsg/read", re.compile(r"recvmsg|recvfrom|readv|__libc_read|\brecv\b")),
    ("futex", re.compile(r"futex|lll_lock|pthread_cond|pthread_mutex")),
    ("epoll_ctl", re.compile(r"epoll_ctl")),
    ("epoll_wait", re.compile(r"epoll_wait")),
    ("eventfd/write", re.compile(r"eventfd|write")),
]
ALLOC = re.compile(r"^(malloc|_int_malloc|_int_free|free|cfree|__libc_malloc|__libc_free|"
                   r"operator new|operator delete|malloc_consolidate|tcache|_int_realloc|realloc|"
                   r"__memalign|aligned_alloc|posix_memalign|_mid_memalign|__libc_calloc|calloc)")


def parse(stream):
    """Yields (tid, period, frames) with frames [(sym, dso)], leaf first."""
    tid, period, frames = None, 0, []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if tid is not None:
                yield tid, period, frames
            tid, period, frames = None, 0, []
            continue
        if not line.startswith("\t"):  # a sample's header: "  TID  PERIOD" (tid padded)
            parts = line.split()
            tid, period, frames = parts[0], int(parts[1]) if len(parts) > 1 else 1, []
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)$", line)
        if m:
            frames.append((m.group(1), m.group(2)))
    if tid is not None:
        yield tid, period, frames


def resolve_inlined(frames):
    """perf names the object of an inlined frame "inlined": use its caller's."""
    out, dso = [], None
    for sym, d in reversed(frames):
        if d != "inlined":
            dso = d
        out.append((sym, dso if d == "inlined" and dso else d))
    return out[::-1]


def short(sym, width=90):
    # Drop template arguments and parameter lists: boost's names run to pages.
    out, depth = [], 0
    for ch in sym:
        if ch == "<":
            depth += 1
            if depth == 1:
                out.append("<…>")
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    s = "".join(out).replace("(anonymous namespace)", "anon")
    s = re.sub(r"\(.*\)", "()", s)
    return s if len(s) <= width else s[: width - 1] + "…"


def lib_of(sym, dso):
    if dso.startswith("[kernel"):
        return "kernel"
    base = dso.rsplit("/", 1)[-1]
    if base.startswith("libonnxruntime"):
        return "ONNX Runtime"
    if base.startswith("libsimdjson"):
        return "simdjson"
    if base.startswith("libc.so") or base.startswith("ld-linux"):
        return "libc: malloc/free" if ALLOC.match(sym) else "libc: other (memcpy, locks, …)"
    if base.startswith("libstdc++"):
        return "libstdc++"
    if base == "mmserve":
        if sym.startswith("boost::"):
            return "mmserve: Boost.Asio/Beast (inlined into mmserve)"
        if sym.startswith("mm::") or sym.startswith("std::") or sym.startswith("Ort::"):
            return "mmserve: own code (+ inlined std, Ort C++ wrapper)"
        return "mmserve: other"
    return base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=float, default=0, help="requests served during the profile")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()

    total = 0
    stage, stage_kernel = collections.Counter(), collections.Counter()
    thread = collections.Counter()
    syscall = collections.Counter()
    lib = collections.Counter()
    func = collections.Counter()
    for tid, period, frames in parse(sys.stdin):
        if not frames:
            continue
        frames = resolve_inlined(frames)
        total += period
        leaf_sym, leaf_dso = frames[0]
        kernel = leaf_dso.startswith("[kernel")
        name = "other (outside the request path markers)"
        for sym, dso in frames:
            if "libonnxruntime" in dso:  # ONNX Runtime's own code, whoever called it
                name = STAGES[0][0]
                break
            for label, rx in STAGES:
                if rx.search(sym):
                    name = label
                    break
            else:
                continue
            break
        stage[name] += period
        if kernel:
            stage_kernel[name] += period
            call = next((SYSCALL.match(s).group(1) for s, _ in frames if SYSCALL.match(s)), None)
            if call is None:
                user = next((s for s, d in frames if not d.startswith("[kernel")), "")
                call = next((f"{n} (preempted on return)" for n, rx in USER_SYSCALL
                             if rx.search(user)), "interrupts, softirq, scheduler (no syscall)")
            syscall[call] += period
        syms = " ".join(s for s, _ in frames)
        if "ThreadPool::Loop" in syms:
            thread["execution thread(s)"] += period
        elif "HttpServer::Impl::Start" in syms or "boost::asio::detail::scheduler::run" in syms:
            thread["HTTP I/O thread(s)"] += period
        elif any(d.endswith("libonnxruntime.so.1") or "libonnxruntime" in d for _, d in frames):
            # ONNX Runtime runs on our threads (intra-op 1); its frames often
            # cannot be unwound to the thread's root.
            thread["unresolved: stack cut short inside ONNX Runtime"] += period
        else:
            thread["other (main thread, logging, unresolved)"] += period
        lib[lib_of(leaf_sym, leaf_dso)] += period
        func[(short(leaf_sym), lib_of(leaf_sym, leaf_dso))] += period

    if total == 0:
        sys.exit("perf_summary: no samples")

    def row(count):
        pct = f"{100.0 * count / total:.1f}%"
        if a.requests:
            return f"{pct} | {count / 1e3 / a.requests:.1f}"
        return pct

    unit = " | CPU µs/req" if a.requests else ""
    align = "|---:" if a.requests else ""
    print(f"Samples: {total / 1e9:.2f} s of CPU" +
          (f", {a.requests:,.0f} requests: {total / 1e3 / a.requests:.1f} CPU µs per request"
           if a.requests else ""))
    print()
    print(f"| request-path stage (nearest marker to the leaf) | share{unit} | of it in the kernel |")
    print(f"|---|---:{align}|---:|")
    for name, count in stage.most_common():
        print(f"| {name} | {row(count)} | {100.0 * stage_kernel[name] / count:.0f}% |")
    print()
    print(f"| thread | share{unit} |")
    print(f"|---|---:{align}|")
    for name, count in thread.most_common():
        print(f"| {name} | {row(count)} |")
    print()
    print(f"| kernel time by system call | share{unit} |")
    print(f"|---|---:{align}|")
    for name, count in syscall.most_common(a.top):
        print(f"| {name} | {row(count)} |")
    print()
    print(f"| self time by library | share{unit} |")
    print(f"|---|---:{align}|")
    for name, count in lib.most_common():
        print(f"| {name} | {row(count)} |")
    print()
    print(f"| self time by function (top {a.top}) | library | share{unit} |")
    print(f"|---|---|---:{align}|")
    for (name, where), count in func.most_common(a.top):
        print(f"| `{name}` | {where} | {row(count)} |")


if __name__ == "__main__":
    main()
