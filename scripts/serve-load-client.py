#!/usr/bin/env python3
"""Throughput client for OpenAI-compatible servers (scripts/bench-serve.sh): concurrent streaming
requests, measured with time.perf_counter. Standard library only.

usage:
  python3 scripts/serve-load-client.py --url http://127.0.0.1:PORT --label NAME
      [--models smol[,a1,...]] [--clients 16] [--rounds 2] [--max-tokens 128]
      [--endpoint completions|chat] [--warmup 1]

Each of --clients threads sends --rounds streaming requests one after the other (client i asks
for model i mod len(--models)), greedy (temperature 0), max_tokens --max-tokens, prompts distinct
per client and round. The tokens a request produced are its usage.completion_tokens when the
server sends usage (stream_options.include_usage), else its number of chunks that carry text
(one per token in llama-cpp-python's server); requests that stop early (end of turn) count what
they produced. Before measuring, --warmup requests of 8 tokens run one at a time (loads caches).

Prints one JSON line on standard output:
  {"label", "url", "endpoint", "models", "clients", "rounds", "max_tokens", "requests", "failed",
   "tokens", "token_counts" ("usage" or "chunks"), "wall_s", "tokens_per_s",
   "ttft_p50_ms", "ttft_p99_ms", "request_p50_s", "short_requests"}
tokens_per_s is every produced token over the wall time from the first request sent to the last
response ended; ttft is the time from sending a request to the first chunk with text in it;
p99 is the nearest-rank percentile (with 32 requests, the largest). A one-line summary goes to
standard error.

Exit codes: 0 every request succeeded; 1 a request failed (status other than 200, a broken
stream); 2 bad arguments.
"""
import argparse
import http.client
import json
import math
import sys
import threading
import time
from urllib.parse import urlparse

TOPICS = ["the history of the river town", "a lighthouse keeper", "the old clockmaker", "a journey across the desert",
          "the last library", "a village in the mountains", "the secret garden", "a ship in the storm",
          "the inventor's workshop", "a winter festival", "the forgotten kingdom", "a train through the night",
          "the painter and the sea", "a market at dawn", "the astronomer's notebook", "a bridge of stone"]


def prompt_for(client, round_):
    topic = TOPICS[client % len(TOPICS)]
    return f"Chapter {round_ + 1}: {topic}.\n\nIt was a long time ago, and"


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stream_request(host, port, endpoint, model, prompt, max_tokens):
    """One streaming request: (ttft seconds or None, duration seconds, tokens, 'usage'|'chunks')."""
    body = {"model": model, "temperature": 0, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = prompt
        path = "/v1/completions"
    conn = http.client.HTTPConnection(host, port, timeout=3600)
    try:
        start = time.perf_counter()
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{path} for {model}: status {response.status}: {response.read()[:300]!r}")
        ttft, chunks, usage, done = None, 0, None, False
        while True:
            line = response.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            event = json.loads(data)
            if event.get("usage"):
                usage = event["usage"]["completion_tokens"]
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") if endpoint == "chat" else choice.get("text")
                if text:
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
        duration = time.perf_counter() - start
        if not done:
            raise RuntimeError(f"{path} for {model}: the stream ended without [DONE] after {chunks} chunks")
        return ttft, duration, (usage if usage is not None else chunks), ("usage" if usage is not None else "chunks")
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description="Concurrent streaming throughput client.")
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--label", required=True, help="the name of this measurement in the JSON line")
    parser.add_argument("--models", default="smol", help="comma-separated model names; client i uses model i mod count")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="requests per client, one after the other")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    parser.add_argument("--warmup", type=int, default=1, help="requests of 8 tokens before measuring")
    args = parser.parse_args()
    if args.clients < 1 or args.rounds < 1 or args.max_tokens < 1:
        parser.error("--clients, --rounds and --max-tokens must be positive")
    url = urlparse(args.url)
    host, port = url.hostname, url.port or 80
    models = args.models.split(",")

    for i in range(args.warmup):
        stream_request(host, port, args.endpoint, models[i % len(models)], "Hello", 8)

    results, errors = [], []
    lock = threading.Lock()

    def client(index):
        for round_ in range(args.rounds):
            try:
                result = stream_request(host, port, args.endpoint, models[index % len(models)],
                                        prompt_for(index, round_), args.max_tokens)
            except Exception as error:  # reported, and the exit code says so
                with lock:
                    errors.append(f"client {index}, round {round_}: {type(error).__name__}: {error}")
                continue
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start

    tokens = sum(r[2] for r in results)
    ttfts = [r[0] for r in results if r[0] is not None]
    record = {
        "label": args.label, "url": args.url, "endpoint": args.endpoint, "models": models,
        "clients": args.clients, "rounds": args.rounds, "max_tokens": args.max_tokens,
        "requests": len(results) + len(errors), "failed": len(errors), "tokens": tokens,
        "token_counts": "+".join(sorted({r[3] for r in results})) or None,
        "wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1),
        "ttft_p50_ms": round(1000 * percentile(ttfts, 50), 1) if ttfts else None,
        "ttft_p99_ms": round(1000 * percentile(ttfts, 99), 1) if ttfts else None,
        "request_p50_s": round(percentile([r[1] for r in results], 50), 3) if results else None,
        "short_requests": sum(r[2] < args.max_tokens for r in results),
    }
    print(json.dumps(record), flush=True)
    print(f"{args.label}: {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tokens/s, "
          f"TTFT p50 {record['ttft_p50_ms']} ms p99 {record['ttft_p99_ms']} ms, "
          f"{record['short_requests']} of {len(results)} requests stopped before {args.max_tokens} tokens", file=sys.stderr)
    for error in errors[:10]:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
