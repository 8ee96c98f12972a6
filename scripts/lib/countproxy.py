"""A fault-free HTTP proxy that counts requests: the benchmark's independent
count of AWS API calls (clusterctl's own count comes from an SDK interceptor).

    python countproxy.py UPSTREAM_URL PORT_FILE [LATENCY_MS [JITTER_MS]]

Listens on a free port of 127.0.0.1 (written to PORT_FILE), forwards every
request to UPSTREAM_URL unchanged and returns the response. GET /__count
returns the number of requests forwarded so far; it is not counted itself.

With LATENCY_MS, every forwarded request is held that long (plus or minus a
uniform JITTER_MS) before it goes upstream, as a real AWS endpoint answers
in 50 to 150 ms where moto_server answers in about one. Requests are
served on threads of their own, so concurrent requests wait concurrently.

With COUNTPROXY_TRACE=FILE in the environment, each forwarded request
appends a line to FILE: its start and end (seconds since the epoch), the
time spent upstream, and what it asked (the Action, the X-Amz-Target, or
the method and path), which shows a run's chain of round trips.
"""

import http.client
import os
import http.server
import random
import sys
import threading
import time
import urllib.parse

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
LATENCY_S = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
JITTER_S = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.0
COUNT = 0
LOCK = threading.Lock()
TRACE = os.environ.get("COUNTPROXY_TRACE")
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on,
    # the second waits for the client's delayed ACK (about 40 ms), a cost
    # of this proxy that no AWS endpoint has.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def forward(self):
        global COUNT
        if self.path == "/__count":
            body = str(COUNT).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with LOCK:
            COUNT += 1
        started = time.time()
        if LATENCY_S > 0:
            time.sleep(max(0.0, LATENCY_S + random.uniform(-JITTER_S, JITTER_S)))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            upstream = time.time()
            resp = conn.getresponse()
            data = resp.read()
            upstream = time.time() - upstream
        except OSError as e:
            # Say so instead of dropping the connection (which the SDK would
            # retry, and the count would grow).
            msg = f"countproxy: upstream failed: {e}".encode()
            self.send_response(502)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        self.send_response(resp.status, resp.reason)
        head = self.command == "HEAD"
        for k, v in resp.getheaders():
            if k.lower() not in HOP and (head or k.lower() != "content-length"):
                self.send_header(k, v)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)
        conn.close()
        if TRACE:
            self.trace(started, upstream, body)

    def trace(self, started, upstream, body):
        what = self.headers.get("X-Amz-Target")
        if not what and body:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            what = (form.get("Action") or [None])[0]
        what = what or f"{self.command} {self.path.split('?')[0]}"
        with LOCK, open(TRACE, "a", encoding="utf-8") as f:
            f.write(f"{started:.3f} {time.time():.3f} {upstream:.3f} {what}\n")

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
