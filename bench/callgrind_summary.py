#!/usr/bin/env python3
"""Summarizes a callgrind profile of mmserve's request path (bench/profile.sh).

  callgrind_summary.py CALLGRIND_OUT --requests N

Prints markdown tables, in instructions (Ir) per request: the inclusive cost
of each request-path step (steps nest: ONNX Runtime's Run is inside
OrtInstance::Run), the allocator's calls and cost, self cost by library and
the top functions by self cost. Callgrind counts user-space instructions
only: system calls, context switches and waiting are invisible to it (the
perf profile in the same folder shows them).
"""
import argparse
import collections
import re
import sys

import perf_summary  # bench/: symbol shortening shared with the perf summary

# (label, regex on the function name): inclusive cost per request.
STEPS = [
    ("whole HTTP I/O thread (asio scheduler::run)", r"^boost::asio::detail::scheduler::run\("),
    ("whole execution thread (ThreadPool::Loop)", r"^mm::ThreadPool::Loop\("),
    ("Beast: read + parse the request (read_op, incl. OnRead)", r"^void boost::beast::http::detail::read_op<"),
    ("  Beast header/start-line parsing (basic_parser::put)", r"^boost::beast::http::basic_parser<true>::put\("),
    ("  Session::OnRead (after parsing: headers, body to shared_ptr, routing)", r"^mm::Session::OnRead\("),
    ("    Router::Handle (path split + percent-decoding, dispatch)", r"^mm::Router::Handle\("),
    ("      DecodeInferRequest (simdjson parse + RequestDecoder)", r"^mm::DecodeInferRequest\("),
    ("        simdjson parse (stage 1 + stage 2)", r"^simdjson::\w+::dom_parser_implementation::parse\("),
    ("      InferenceService::Infer (lookup, validate, enqueue)", r"^mm::InferenceService::Infer\("),
    ("        ModelManager::Get", r"^mm::ModelManager::Get\("),
    ("        ValidateRequest", r"^mm::ValidateRequest\("),
    ("        ModelScheduler::Enqueue (queue + ThreadPool::Submit, or all of an inline run)", r"^mm::ModelScheduler::Enqueue\("),
    ("ModelScheduler::RunOne / Execute (the model run and its answer, on either thread)", r"^mm::ModelScheduler::(RunOne|Execute)\("),
    ("  OrtInstance::Run (wrap inputs, Run, read outputs)", r"^mm::\(anonymous namespace\)::OrtInstance::Run\("),
    ("    ONNX Runtime Session::Run", r"^Ort::detail::SessionImpl<OrtSession>::Run\("),
    ("  completion: EncodeInferResponse + post the reply", r"^std::_Function_handler<void \(mm::StatusOr<std::unique_ptr<mm::InferResponse"),
    ("    EncodeInferResponse (JSON writer)", r"^mm::EncodeInferResponse\("),
    ("      std::to_chars(float)", r"^std::to_chars\(char\*, char\*, float\)"),
    ("Session::Write (response head + async_write)", r"^mm::Session::Write\("),
]
ALLOC_FNS = {
    "malloc": r"^(malloc|__libc_malloc)$",
    "free": r"^(free|cfree|__libc_free)$",
    "operator new": r"^operator new\(",
    "operator delete": r"^operator delete\(",
}
ALLOC_SELF = re.compile(r"^(malloc|_int_malloc|_int_free|free|cfree|malloc_consolidate|"
                        r"operator new|operator delete|tcache_\w+|unlink_chunk|"
                        r"__libc_(malloc|free|calloc|realloc)|_int_realloc|realloc|calloc)")


def parse(path):
    names = {"fn": {}, "ob": {}, "fl": {}}
    self_cost = collections.Counter()
    call_cost = collections.Counter()   # fn -> cost of its outgoing calls
    calls = collections.Counter()       # fn -> times called
    edges = collections.Counter()       # (caller, callee) -> times called
    obj_of = {}
    fn = ob = None
    cfn = cob = None
    pending_call = None
    total = 0

    def name(kind, text):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", text)
        if not m:
            return text
        key = m.group(1)
        if m.group(2) is not None:
            names[kind][key] = m.group(2)
        return names[kind].get(key, key)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                if pending_call is not None:
                    call_cost[fn] += cost
                    calls[pending_call] += call_count
                    edges[(fn, pending_call)] += call_count
                    pending_call = None
                else:
                    self_cost[fn] += cost
                    total += cost
                continue
            key, _, value = line.partition("=")
            if key == "ob":
                ob = name("ob", value)
            elif key == "fn":
                fn = name("fn", value)
                obj_of.setdefault(fn, ob)
                cob = None
            elif key in ("fl", "fi", "fe"):
                name("fl", value)
            elif key == "cob":
                cob = name("ob", value)
            elif key == "cfi" or key == "cfl":
                name("fl", value)
            elif key == "cfn":
                cfn = name("fn", value)
            elif key == "calls":
                call_count = int(value.split()[0])
                pending_call = cfn
            elif key == "summary" or key == "totals":
                pass
    return total, self_cost, call_cost, calls, edges, obj_of


def lib(obj):
    base = (obj or "?").rsplit("/", 1)[-1]
    for prefix, label in [("libonnxruntime", "ONNX Runtime"), ("libsimdjson", "simdjson"),
                          ("libc.so", "libc"), ("libstdc++", "libstdc++"), ("mmserve", "mmserve"),
                          ("ld-linux", "ld.so"), ("libspdlog", "spdlog"), ("libfmt", "fmt")]:
        if base.startswith(prefix):
            return label
    return base


def short(sym, width=100):
    return perf_summary.short(sym, width)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("callgrind_out")
    ap.add_argument("--requests", type=float, required=True)
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()
    total, self_cost, call_cost, calls, edges, obj_of = parse(a.callgrind_out)
    n = a.requests
    if total == 0:
        sys.exit("callgrind_summary: no cost recorded")

    def inclusive(rx):
        # The largest match: several matches are usually wrappers of each other
        # (parse -> parse_into_document), whose costs must not be added up.
        r = re.compile(rx)
        return max((self_cost[f] + call_cost[f] for f in set(self_cost) | set(call_cost)
                    if f and r.search(f)), default=0)

    print(f"{total:,} instructions for {n:,.0f} requests: **{total / n:,.0f} Ir per request** "
          "(user space only).")
    print()
    print("| step (inclusive; indented steps are inside the one above) | Ir/request | share |")
    print("|---|---:|---:|")
    for label, rx in STEPS:
        cost = inclusive(rx)
        indent = len(label) - len(label.lstrip(" "))
        print(f"| {'· ' * (indent // 2)}{label.strip()} | {cost / n:,.0f} | "
              f"{100.0 * cost / total:.1f}% |")
    print()
    alloc_self = sum(c for f, c in self_cost.items() if f and ALLOC_SELF.match(f))
    print("| allocator | calls/request |")
    print("|---|---:|")
    for label, rx in ALLOC_FNS.items():
        r = re.compile(rx)
        print(f"| {label} | {sum(c for f, c in calls.items() if f and r.search(f)) / n:.1f} |")
    print(f"| malloc/free/new/delete self cost | {alloc_self / n:,.0f} Ir "
          f"({100.0 * alloc_self / total:.1f}%) |")
    print()
    # Who allocates: direct callers of malloc / operator new (operator new's
    # own malloc call is charged to operator new's callers instead).
    new_rx, malloc_rx = re.compile(ALLOC_FNS["operator new"]), re.compile(ALLOC_FNS["malloc"])
    callers = collections.Counter()
    for (caller, callee), count in edges.items():
        if not caller or not callee:
            continue
        if new_rx.search(callee) or (malloc_rx.search(callee) and not new_rx.search(caller)):
            callers[(short(caller, 80), lib(obj_of.get(caller)))] += count
    by_caller_lib = collections.Counter()
    for (_, where), count in callers.items():
        by_caller_lib[where] += count
    # Template code (std::vector, std::string) compiled into several objects
    # is charged to whichever object callgrind found it in: rough split only.
    print("| allocations by the caller's library (rough) | allocations/request |")
    print("|---|---:|")
    for where, count in by_caller_lib.most_common():
        print(f"| {where} | {count / n:.1f} |")
    print()
    print(f"| top allocating callers (malloc or operator new) | library | allocations/request |")
    print("|---|---|---:|")
    for (caller, where), count in callers.most_common(a.top):
        print(f"| `{caller}` | {where} | {count / n:.1f} |")
    print()
    by_lib = collections.Counter()
    for f, c in self_cost.items():
        by_lib[lib(obj_of.get(f))] += c
    print("| self cost by library | Ir/request | share |")
    print("|---|---:|---:|")
    for name, c in by_lib.most_common():
        print(f"| {name} | {c / n:,.0f} | {100.0 * c / total:.1f}% |")
    print()
    print(f"| top {a.top} functions by self cost | library | Ir/request | share |")
    print("|---|---|---:|---:|")
    for f, c in self_cost.most_common(a.top):
        print(f"| `{short(f or '?')}` | {lib(obj_of.get(f))} | {c / n:,.0f} | "
              f"{100.0 * c / total:.1f}% |")


if __name__ == "__main__":
    main()
