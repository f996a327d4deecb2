"""A bounded load test of `flashrt serve`: 8 concurrent clients (4 HTTP, 4 openpi websocket)
x 100 predicts each (FLASHRT_SERVER_LOAD_REQUESTS overrides the 100), every request with a
timeout, against one server on 127.0.0.1. Asserts 0 errors, correct shapes, each websocket
client's replies in its own order (its noise makes each reply identifiable), the server's
request counters agreeing with the client's count, and prints p50/p99 round-trip latency.
The model is the tiny checkpoint with 1 view and 1 flow step, so the test measures the server,
not the CPU reference's matmuls, and fits the CI budget (about 20 s on 2 cores).
Run: FLASHRT_BIN=build/flashrt python3 -m pytest tests/python/test_server_load.py -q
"""

import json
import os
import re
import threading
import time

import numpy as np
import requests

from server_fixtures import *  # noqa: F401,F403 - fixtures and helpers
from server_fixtures import ServerProcess, b64, ws_connect

HORIZON, ACTION_DIM = 4, 32
N = int(os.environ.get("FLASHRT_SERVER_LOAD_REQUESTS", "100"))


def test_eight_clients_hundred_requests_each(flashrt_bin, server_checkpoint, openpi_client, capsys):
    from openpi_client import msgpack_numpy

    server = ServerProcess(flashrt_bin, server_checkpoint, "--views", 1, "--horizon", HORIZON,
                           "--steps", 1, "--queue-size", 64, "--default-prompt", "go")
    rng = np.random.default_rng(31)
    img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    state = rng.uniform(-1, 1, 8)
    http_body = json.dumps({"images": [b64(img.tobytes())], "image_shape": [224, 224, 3],
                            "state": state.tolist()})
    latencies, errors, lock = [], [], threading.Lock()

    def http_client(k):
        session = requests.Session()
        for i in range(N):
            t0 = time.perf_counter()
            try:
                r = session.post(server.url + "/predict", data=http_body, timeout=60)
                ok = r.status_code == 200 and r.json()["shape"] == [HORIZON, 7]
                if not ok:
                    raise AssertionError("HTTP client {} request {}: {} {}".format(k, i, r.status_code, r.text[:200]))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                with lock:
                    errors.append(repr(e))
                return
            with lock:
                latencies.append(time.perf_counter() - t0)

    def ws_client(k):
        try:
            conn, _ = ws_connect(server)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))
            return
        first = None
        try:
            for i in range(N):
                # Noise 0 or 1 alternately: the replies of the two must alternate as well.
                noise = np.full((HORIZON, ACTION_DIM), float(i % 2), np.float32)
                obs = {"image": {"base_0_rgb": img}, "state": state, "noise": noise}
                t0 = time.perf_counter()
                conn.send(msgpack_numpy.packb(obs))
                reply = conn.recv(timeout=60)
                if isinstance(reply, str):
                    raise AssertionError("websocket client {} request {}: {}".format(k, i, reply))
                a = msgpack_numpy.unpackb(reply)["actions"]
                if a.shape != (HORIZON, 7):
                    raise AssertionError("websocket client {}: shape {}".format(k, a.shape))
                first = [a, None] if first is None else first
                if i == 1:
                    first[1] = a
                    if np.array_equal(a, first[0]):
                        raise AssertionError("noise 0 and 1 gave the same actions: no order check")
                if i >= 2 and not np.array_equal(a, first[i % 2]):
                    raise AssertionError("websocket client {} request {}: reply out of order".format(k, i))
                with lock:
                    latencies.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))
        finally:
            conn.close()

    try:
        before = requests.get(server.url + "/metrics", timeout=10).text
        threads = [threading.Thread(target=http_client, args=(k,)) for k in range(4)]
        threads += [threading.Thread(target=ws_client, args=(k,)) for k in range(4)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        wall = time.perf_counter() - t0
        assert not any(t.is_alive() for t in threads), "clients still running after 300 s"
        after = requests.get(server.url + "/metrics", timeout=10).text
    finally:
        code = server.stop()
    assert not errors, errors[:5]
    assert len(latencies) == 8 * N
    assert code == 0, server.log()

    def count(text, protocol, route):
        m = re.search(r'flashrt_requests_total\{protocol="%s",route="%s",status="200"\} (\d+)'
                      % (protocol, route), text)
        return int(m.group(1)) if m else 0

    assert count(after, "http", "/predict") - count(before, "http", "/predict") == 4 * N
    assert count(after, "websocket", "ws") - count(before, "websocket", "ws") == 4 * N
    ms = np.array(latencies) * 1000
    with capsys.disabled():
        print("\n[server load] 8 clients x {} requests: {} ok, 0 errors, {:.1f} req/s; round trip "
              "p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms".format(
                  N, len(ms), len(ms) / wall, np.percentile(ms, 50), np.percentile(ms, 99), ms.max()))
