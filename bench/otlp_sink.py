"""An OTLP/HTTP collector for benchmarks: accepts POSTs, counts the spans in
them, answers 200, keeps nothing. Prints "OTLP_SINK port=N" once listening and
"OTLP_SINK posts=P spans=S" when stopped (SIGTERM).

It stands in for a collector on another machine, yet runs on the load
generator's CPU, so it takes as little of it as it can: it counts spans by
their `"spanId"` keys (a C-speed scan of the bytes) instead of parsing the
JSON. A batch of 512 traces is about 1.9 MB; Python parses it in about 15 ms
and counts its keys in about 1 ms, on the CPU wrk needs."""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

posts = spans = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real collector

    def do_POST(self):
        global posts, spans
        body = self.rfile.read(int(self.headers["Content-Length"]))
        posts += 1
        spans += body.count(b'"spanId"')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def stop(*_):
    print(f"OTLP_SINK posts={posts} spans={spans}", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print(f"OTLP_SINK port={server.server_address[1]}", flush=True)
server.serve_forever()
