#!/usr/bin/env python3
"""Load test of `corpus serve` (docs/SERVE.md): many concurrent clients, valid and bad requests
mixed, greedy answers checked against the answers the server gives one request at a time.
Standard library only.

usage:
  python3 scripts/load-test-serve.py [--binary PATH] [--model GGUF] [--clients 32]
                                     [--requests 500] [--max-tokens 16] [--seed 0]
  --binary   the corpus binary (default .build/release/corpus, else .build/debug/corpus)
  --model    the GGUF file (default: the SmolLM2 test model, from scripts/fetch-test-model.sh)

What it does:
  1. writes a test adapter (scripts/make-test-adapter.py, seed 1) and starts
     `corpus serve --model GGUF --name smol --adapter med=DIR --port 0 --max-queue 600
      --max-body-bytes 65536`;
  2. computes the reference answer of every distinct valid request, one at a time: 12 chat
     questions and 8 completion prompts, each for the base model (smol) and the adapter (med),
     greedy (temperature 0), --max-tokens tokens at most, not streamed;
  3. sends --requests requests from --clients threads (keep-alive connections, one per thread).
     Nine in ten are valid (base and adapter alternating, half of them streamed with
     include_usage); one in ten is bad, in turn: malformed JSON (expect 400 invalid_json), a body
     over --max-body-bytes (expect 413 request_too_large), or a streaming request abandoned after
     its first chunk (the client closes the socket). The first 50 requests run as a first wave;
     the server's RSS (VmRSS of /proc/PID/status) is read once they are done and again at the end.
  4. checks: the server is still running at the end (no crash); every valid request got 200 (so
     no 5xx, and no 429 with this queue); every valid answer (text, finish_reason,
     completion_tokens; streamed ones reassembled from their chunks) equals its reference exactly;
     bad requests got their expected status and error code; the RSS at the end is within 10% of
     the RSS after the first 50 requests; SIGTERM then stops the server with exit code 0.
Prints a summary (requests by kind and status, wall time, RSS) and every failure with the
request, what was expected and what came back.

Exit codes: 0 every check passed; 1 a check failed (or the server did not start); 2 bad
arguments or no corpus binary.
"""
import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BODY_BYTES = 65536
MAX_QUEUE = 600
FIRST_WAVE = 50
RSS_TOLERANCE = 0.10
ABANDONED_MAX_TOKENS = 64   # long enough that abandoning matters

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Name a color.",
    "What is 2+2?",
    "Write a haiku about rain.",
    "Give me a synonym for happy.",
    "What do bees make?",
    "How many legs does a spider have?",
    "Say hello in Spanish.",
    "What is the boiling point of water?",
    "Suggest a name for a cat.",
    "What is the opposite of cold?",
    "Tell me a fun fact about the moon.",
]
COMPLETION_PROMPTS = [
    "Once upon a time",
    "The quick brown fox",
    "The capital of Germany is",
    "def fibonacci(n):",
    "1, 2, 3, 4,",
    "Water boils at",
    "In 1492, Columbus",
    "The largest planet in the solar system is",
]
MALFORMED_BODIES = [
    b'{"model": "smol", "messages": [{"role": "user", "content": "Hi"}',   # truncated
    b"not json at all",
    b'{"model": "smol", "messages": [], }',                                 # trailing comma
    b"[1, 2, 3]",                                                           # JSON, not an object
    b'{"model": "smol", "messages": [{"role": "user", "content": "\xff\xfe"}]}',  # invalid UTF-8
]


def fail(message, code=1):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Server:
    """A `corpus serve` process on a free port; its standard error is kept in a list of lines."""

    def __init__(self, argv):
        self.log = []
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, errors="replace")
        self.port = None
        ready = threading.Event()

        def drain():
            for line in self.process.stderr:
                self.log.append(line.rstrip("\n"))
                if self.port is None and line.startswith("corpus serve: listening on http://"):
                    self.port = int(line.split("http://", 1)[1].split()[0].rsplit(":", 1)[1])
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(120) or self.port is None:
            self.kill()
            fail("corpus serve did not start; its log:\n" + "\n".join(self.log[-20:]))

    def alive(self):
        return self.process.poll() is None

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code (None when killed)."""
        if not self.alive():
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait()


class Client:
    """One keep-alive connection per thread; JSON requests, SSE streams."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()
        self.lock = threading.Lock()
        self.reconnects = 0

    def _connection(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            self.local.conn, self.local.used = conn, False
        return conn

    def _drop(self):
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def send(self, path, body):
        """Sends a POST and returns the response (headers read). A reused keep-alive connection the
        server closed in the meantime is replaced once (counted in reconnects)."""
        for attempt in (0, 1):
            conn = self._connection()
            reused = self.local.used
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                self.local.used = True
                return response
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop()
                if not reused or attempt == 1:
                    raise
                with self.lock:
                    self.reconnects += 1

    def finish(self, response):
        """Reads the rest of a response; drops the connection when the server closes it."""
        data = response.read()
        if response.will_close:
            self._drop()
        return data

    def json_request(self, path, payload=None, raw=None):
        """(status, parsed JSON body or the raw bytes when not JSON)."""
        body = raw if raw is not None else json.dumps(payload).encode()
        response = self.send(path, body)
        data = self.finish(response)
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data

    def stream(self, path, payload, abandon=False):
        """A streaming request: (status, events) where events are the parsed `data:` chunks (the
        error body when the status is not 200). With abandon, closes the socket after the first
        chunk and returns that chunk alone."""
        if abandon:
            self._drop()        # the abandoned request gets a connection of its own
        response = self.send(path, json.dumps(payload).encode())
        if response.status != 200:
            return response.status, json.loads(self.finish(response) or b"null")
        events = []
        while True:
            line = response.readline()
            if not line:
                raise ConnectionError(f"stream ended without [DONE] after {len(events)} chunks")
            line = line.rstrip(b"\r\n")
            if not line.startswith(b"data: "):
                continue
            data = line[len(b"data: "):]
            if data == b"[DONE]":
                break
            events.append(json.loads(data))
            if abandon:
                self._drop()    # closes the socket in the middle of the stream
                return response.status, events
        self.finish(response)
        return response.status, events


def request_body(spec, max_tokens, stream):
    kind, model, prompt = spec
    body = {"model": model, "temperature": 0, "max_tokens": max_tokens}
    if kind == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def path_of(kind):
    return "/v1/chat/completions" if kind == "chat" else "/v1/completions"


def answer_of_body(body):
    """(text, finish_reason, completion_tokens) of a non-streamed response body."""
    choice = body["choices"][0]
    text = choice["message"]["content"] if "message" in choice else choice["text"]
    return text, choice["finish_reason"], body["usage"]["completion_tokens"]


def answer_of_stream(events):
    """(text, finish_reason, completion_tokens) reassembled from the chunks of a stream."""
    text, finish, tokens = [], None, None
    for event in events:
        if event.get("usage"):
            tokens = event["usage"]["completion_tokens"]
        for choice in event.get("choices", []):
            piece = choice["delta"].get("content") if "delta" in choice else choice.get("text")
            if piece:
                text.append(piece)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return "".join(text), finish, tokens


def plan(count, specs, seed):
    """The list of requests: (kind, spec, stream) with kind valid, malformed, oversized or abandoned."""
    rng = random.Random(seed)
    bad = ["malformed", "oversized", "abandoned"]
    base_specs = [s for s in specs if s[1] == "smol"]
    adapter_specs = [s for s in specs if s[1] == "med"]
    out, valid = [], 0
    for i in range(count):
        if i % 10 == 9:
            out.append((bad[(i // 10) % 3], rng.choice(base_specs + adapter_specs), True))
        else:
            out.append(("valid", rng.choice(adapter_specs if valid % 2 else base_specs), rng.random() < 0.5))
            valid += 1
    return out


def main():
    parser = argparse.ArgumentParser(description="Load test of corpus serve.")
    parser.add_argument("--binary", help="the corpus binary (default .build/release/corpus, else .build/debug/corpus)")
    parser.add_argument("--model", help="the GGUF file (default: the SmolLM2 test model)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--requests", type=int, default=500, help="requests in all (default 500)")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of the valid requests (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix (default 0)")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < FIRST_WAVE or args.max_tokens < 1:
        parser.error(f"--clients and --max-tokens must be positive and --requests at least {FIRST_WAVE}")

    binary = args.binary
    if binary is None:
        binary = next((p for p in (os.path.join(ROOT, ".build/release/corpus"), os.path.join(ROOT, ".build/debug/corpus"))
                       if os.access(p, os.X_OK)), None)
    if binary is None or not os.access(binary, os.X_OK):
        fail(f"no corpus binary ({binary or 'none found'}); build it (swift build -c release --product corpus) or pass --binary", 2)
    model = args.model or subprocess.run([os.path.join(ROOT, "scripts/fetch-test-model.sh")], check=True,
                                         stdout=subprocess.PIPE, text=True).stdout.strip()

    work = tempfile.TemporaryDirectory(prefix="corpus-load-test.")
    adapter = os.path.join(work.name, "med")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make-test-adapter.py"), adapter, "--seed", "1"], check=True)
    server = Server([binary, "serve", "--model", model, "--name", "smol", "--adapter", f"med={adapter}", "--port", "0",
                     "--max-queue", str(MAX_QUEUE), "--max-body-bytes", str(MAX_BODY_BYTES)])
    pid = server.process.pid
    print(f"corpus serve: pid {pid}, port {server.port}, {args.clients} clients, {args.requests} requests, "
          f"max_tokens {args.max_tokens}", flush=True)
    client = Client(server.port)
    failures = []

    def failure(message):
        failures.append(message)
        if len(failures) <= 20:
            print(f"FAIL  {message}", flush=True)

    try:
        # 2. references, one at a time
        specs = [(kind, model_name, prompt) for model_name in ("smol", "med")
                 for kind, prompts in (("chat", CHAT_PROMPTS), ("completion", COMPLETION_PROMPTS)) for prompt in prompts]
        started = time.perf_counter()
        reference = {}
        for spec in specs:
            status, body = client.json_request(path_of(spec[0]), request_body(spec, args.max_tokens, False))
            if status != 200:
                fail(f"reference request {spec} alone: status {status}: {body!r}")
            reference[spec] = answer_of_body(body)
        differing = sum(reference[(k, "smol", p)] != reference[(k, "med", p)] for k, _, p in specs if _ == "smol")
        print(f"references: {len(specs)} answers one at a time in {time.perf_counter() - started:.1f} s "
              f"(the adapter's differs from the base model's for {differing} of {len(specs) // 2} prompts)", flush=True)

        # 3. the load
        requests = plan(args.requests, specs, args.seed)
        counts = {}
        counts_lock = threading.Lock()

        def run(index):
            kind, spec, stream = requests[index]
            label = f"request #{index} ({kind}, {spec[0]}, model {spec[1]}, {'streamed' if stream else 'not streamed'}, prompt {spec[2]!r})"
            try:
                if kind == "valid":
                    body = request_body(spec, args.max_tokens, stream)
                    if stream:
                        status, events = client.stream(path_of(spec[0]), body)
                        got = answer_of_stream(events) if status == 200 else events
                    else:
                        status, response = client.json_request(path_of(spec[0]), body)
                        got = answer_of_body(response) if status == 200 else response
                    if status != 200:
                        failure(f"{label}: expected 200, got {status}: {got!r}")
                    elif got != reference[spec]:
                        failure(f"{label}: expected {reference[spec]!r} (the answer alone), got {got!r}")
                elif kind == "malformed":
                    raw = MALFORMED_BODIES[index % len(MALFORMED_BODIES)]
                    label = f"request #{index} (malformed JSON {raw[:40]!r})"
                    status, response = client.json_request("/v1/chat/completions", raw=raw)
                    code = response.get("error", {}).get("code") if isinstance(response, dict) else None
                    if status != 400 or code != "invalid_json":
                        failure(f"{label}: expected 400 invalid_json, got {status}: {response!r}")
                elif kind == "oversized":
                    body = request_body(spec, args.max_tokens, False)
                    body["messages" if spec[0] == "chat" else "prompt"] = (
                        [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 1000)}] if spec[0] == "chat" else "x" * (MAX_BODY_BYTES + 1000))
                    label = f"request #{index} (oversized body of {len(json.dumps(body))} bytes)"
                    status, response = client.json_request(path_of(spec[0]), body)
                    code = response.get("error", {}).get("code") if isinstance(response, dict) else None
                    if status != 413 or code != "request_too_large":
                        failure(f"{label}: expected 413 request_too_large, got {status}: {response!r}")
                else:  # abandoned
                    status, events = client.stream(path_of(spec[0]), request_body(spec, ABANDONED_MAX_TOKENS, True), abandon=True)
                    if status != 200 or len(events) != 1:
                        failure(f"{label}: expected 200 and a first chunk, got {status}: {events!r}")
            except Exception as error:   # a connection error is a failure of this request, not of the test
                status = type(error).__name__
                failure(f"{label}: {status}: {error}")
            with counts_lock:
                key = (kind, status)
                counts[key] = counts.get(key, 0) + 1

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            list(pool.map(run, range(FIRST_WAVE)))
        rss_first = rss_kb(pid) if server.alive() else None
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            list(pool.map(run, range(FIRST_WAVE, len(requests))))
        wall = time.perf_counter() - started

        # abandoned streams leave the batch at the next step: wait until nothing is queued or running
        idle, health = False, None
        for _ in range(100):
            if not server.alive():
                break
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/health")
            health = json.loads(conn.getresponse().read())
            conn.close()
            if health.get("queue_depth") == 0:
                idle = True
                break
            time.sleep(0.1)
        alive = server.alive()
        rss_end = rss_kb(pid) if alive else None
        rss_peak = rss_kb(pid, "VmHWM") if alive else None

        # 4. checks and summary
        if not alive:
            failure(f"the server died during the run (exit code {server.process.returncode}); its log:\n" + "\n".join(server.log[-20:]))
        elif not idle:
            failure(f"/health still reports queued requests 10 s after the last response: {health!r}")
        if rss_first and rss_end and abs(rss_end - rss_first) > RSS_TOLERANCE * rss_first:
            failure(f"RSS after the run {rss_end / 1024:.1f} MiB is not within 10% of the RSS after the first "
                    f"{FIRST_WAVE} requests, {rss_first / 1024:.1f} MiB")
        valid = sum(n for (kind, _), n in counts.items() if kind == "valid")
        print(f"\n{len(requests)} requests ({valid} valid) from {args.clients} clients in {wall:.1f} s "
              f"({len(requests) / wall:.1f} requests/s); keep-alive reconnects: {client.reconnects}")
        print("requests by kind and status:")
        for (kind, status), n in sorted(counts.items(), key=lambda item: (item[0][0], str(item[0][1]))):
            print(f"  {kind:<10} {status!s:<22} {n}")
        if rss_first and rss_end:
            print(f"server RSS: {rss_first / 1024:.1f} MiB after the first {FIRST_WAVE} requests, {rss_end / 1024:.1f} MiB "
                  f"at the end ({100 * (rss_end - rss_first) / rss_first:+.1f}%), peak {rss_peak / 1024:.1f} MiB")
        if alive:
            code = server.stop()
            if code != 0:
                failure(f"after SIGTERM the server exited with {code} (expected 0; None: killed after 30 s)")
    finally:
        server.kill()
        work.cleanup()

    if failures:
        print(f"\nload-test-serve: FAILED, {len(failures)} failure(s)" + (" (the first 20 are shown above)" if len(failures) > 20 else ""))
        return 1
    print("\nload-test-serve: passed (server alive, no 5xx, every greedy answer equal to its answer alone, RSS stable)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
