"""Closed-loop HTTP load on loopback: wrk with a Lua script, or a small Python generator.

Every request is ``POST /v1/authorize`` with a random subject of the world and one of the
request shapes of ``datagen.REQUESTS`` (the floors answer the same requests). Both generators
return the same dict: requests, seconds, rps, latency percentiles (ms) and error counts.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .datagen import REQUESTS, SYSTEM

WRK = shutil.which("wrk")


def ensure_wrk(log: Any) -> str | None:
    """wrk, installed with apt-get if missing and we may (root, Debian); None means: use Python."""
    global WRK
    if WRK:
        return WRK
    apt = shutil.which("apt-get")
    if apt and hasattr(os, "geteuid") and os.geteuid() == 0:
        log("wrk not found: trying apt-get install -y wrk")
        try:
            subprocess.run([apt, "install", "-y", "wrk"], capture_output=True, timeout=300, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"apt-get failed: {exc!r}")
        WRK = shutil.which("wrk")
    if not WRK:
        log(
            "wrk is not available (apt-get install wrk): falling back to the Python load generator, which "
            "shares the CPU with the server and understates throughput; the report says which was used"
        )
    return WRK


LUA = r"""
local subjects = __SUBJECTS__
local system = "__SYSTEM__"
local shapes = { __SHAPES__ }
local path = "__PATH__"
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer __TOKEN__" }

function init(args)
  math.randomseed(__SEED__ + os.time())
end

function request()
  local i = math.random(0, subjects - 1)
  local body = '{"subject":{"system":"' .. system .. '","value":"S-' .. i .. '"},'
    .. shapes[math.random(#shapes)] .. '}'
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _shape(purpose: str, categories: list[str]) -> str:
    return json.dumps(json.dumps({"purpose": purpose, "data_categories": categories})[1:-1])


def _result(
    requests: int, seconds: float, p50: float, p90: float, p99: float, errors: int, generator: str
) -> dict[str, Any]:
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1) if seconds else 0.0,
        "p50_ms": round(p50, 3),
        "p90_ms": round(p90, 3),
        "p99_ms": round(p99, 3),
        "errors": errors,
        "generator": generator,
    }


def wrk(
    *,
    port: int,
    token: str,
    subjects: int,
    connections: int,
    seconds: float,
    seed: int = 1,
    path: str = "/v1/authorize",
) -> dict[str, Any]:
    assert WRK is not None
    script = (
        LUA.replace("__SUBJECTS__", str(subjects))
        .replace("__SYSTEM__", SYSTEM)
        .replace("__SHAPES__", ", ".join(_shape(p, c) for p, c in REQUESTS))
        .replace("__PATH__", path)
        .replace("__TOKEN__", token)
        .replace("__SEED__", str(seed))
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            [
                WRK,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                handle.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    line = next(x for x in out.splitlines() if x.startswith("BENCHJSON "))
    raw = json.loads(line.removeprefix("BENCHJSON "))
    errors = sum(raw[k] for k in ("connect_errors", "write_errors", "status_errors", "timeouts"))
    return _result(
        raw["requests"],
        raw["duration_us"] / 1e6,
        raw["p50_us"] / 1000,
        raw["p90_us"] / 1000,
        raw["p99_us"] / 1000,
        errors,
        "wrk",
    )


def python_load(
    *,
    port: int,
    token: str,
    subjects: int,
    connections: int,
    seconds: float,
    seed: int = 1,
    path: str = "/v1/authorize",
) -> dict[str, Any]:
    """``connections`` threads, each a closed loop of one request at a time, until the deadline.

    It shares the two cores with the server and holds the GIL, so it understates the service's
    rate more than wrk does; the result says which generator measured it.
    """
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def loop(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        mine: list[float] = []
        failed = 0
        while time.perf_counter() < deadline:
            purpose, categories = rng.choice(REQUESTS)
            body = json.dumps(
                {
                    "subject": {"system": SYSTEM, "value": f"S-{rng.randrange(subjects)}"},
                    "purpose": purpose,
                    "data_categories": categories,
                }
            )
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status != 200:
                    failed += 1
            except OSError:
                failed += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    began = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies) or [0.0]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return _result(len(latencies), elapsed, pct(0.5), pct(0.9), pct(0.99), errors[0], "python")


def run(**kwargs: Any) -> dict[str, Any]:
    return wrk(**kwargs) if WRK else python_load(**kwargs)


def post_json(
    port: int, path: str, body: Any, token: str | None = None, timeout: float = 120
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def token(port: int, client_id: str, secret: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        import base64

        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        conn.request(
            "POST",
            "/oauth/token",
            body="grant_type=client_credentials&scope=authorize",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"},
        )
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"token request failed: {response.status} {body}")
        return str(body["access_token"])
    finally:
        conn.close()
