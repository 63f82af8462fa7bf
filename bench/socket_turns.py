"""Per-turn latency of the Responses API's WebSocket mode, straight to the mock provider
("direct") and through the gateway, alternated block by block in one run so both see the
same machine; and, through the gateway, a streamed POST /v1/responses per turn (what Codex
does without WebSockets) for comparison. A turn is from sending `response.create` (or the
POST) to receiving `response.completed`.

Usage: python socket_turns.py MOCK_URL GATEWAY_URL KEY [TURNS] [BLOCK]
Prints one JSON object: per path, the count, p50/p90/p99/max in ms.
"""

import asyncio
import http.client
import json
import statistics
import sys
import time
from urllib.parse import urlparse

import websockets


def frame(previous):
    body = {"type": "response.create", "model": "gpt-4o-mini", "store": False,
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": "Find fizz_buzz() and run its tests"}]}]}
    if previous:
        body["previous_response_id"] = previous
    return json.dumps(body)


async def socket_turns(url, key, turns, out):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        previous = None
        for _ in range(turns):
            started = time.perf_counter()
            await ws.send(frame(previous))
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "response.completed":
                    previous = event["response"]["id"]
                    break
                if event["type"] == "error":
                    raise SystemExit(f"error frame: {event}")
            out.append((time.perf_counter() - started) * 1000)


def http_turns(base, key, turns, out):
    url = urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port)
    body = json.loads(frame(None))
    del body["type"]
    body["stream"] = True
    payload = json.dumps(body)
    for _ in range(turns):
        started = time.perf_counter()
        connection.request("POST", url.path + "/responses", payload,
                           {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200 or b"response.completed" not in data:
            raise SystemExit(f"HTTP {response.status}: {data[:200]!r}")
        out.append((time.perf_counter() - started) * 1000)


def summary(samples):
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 3), "p90": round(at(0.90), 3),
            "p99": round(at(0.99), 3), "max": round(ordered[-1], 3)}


async def main():
    mock, gateway, key = sys.argv[1], sys.argv[2], sys.argv[3]
    turns = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    block = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    ws = lambda base: base.replace("http://", "ws://") + "/responses"
    results = {"direct socket": [], "gateway socket": [], "gateway http stream": []}
    # Warm up every path once.
    await socket_turns(ws(mock), None, 20, [])
    await socket_turns(ws(gateway), key, 20, [])
    http_turns(gateway, key, 20, [])
    for _ in range(turns // block):
        await socket_turns(ws(mock), None, block, results["direct socket"])
        await socket_turns(ws(gateway), key, block, results["gateway socket"])
        http_turns(gateway, key, block, results["gateway http stream"])
    print(json.dumps({path: summary(samples) for path, samples in results.items()}))


asyncio.run(main())
