"""`flashrt serve` over HTTP JSON, with Python requests, on 127.0.0.1.

- GET /health (the documented fields, ready), GET /healthz, 404 / 405.
- POST /predict: raw base64 uint8 images and PNG files of the same pixels give the same
  actions; they equal flash_rt's in-process predict with the same noise; a null slot is masked;
  the server's default prompt is used when none is sent; long strings parsed on the fast path
  give what the plain JSON path gives, and errors after them keep their position.
- GET /metrics: Prometheus text whose request counters move by status and whose histograms
  are cumulative and end with +Inf == _count.
- A queue of 1 overflows under concurrent requests: 503 with Retry-After, the rest 200.
- While loading / warming up: /health and /predict answer 503 "loading"; --api-key guards
  /predict (401) but not /health.
- SIGTERM / SIGINT while requests are queued: every one of them is answered 200, the process
  exits 0 and no longer accepts connections.
Run: FLASHRT_BIN=build/flashrt FLASH_RT_LIBRARY=build/libflashrt.so python3 -m pytest
     tests/python/test_server_http.py -q
"""

import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

from server_fixtures import *  # noqa: F401,F403 - fixtures and helpers
from server_fixtures import (DEFAULT_PROMPT, HORIZON, ACTION_DIM, LIBERO_DIMS, TOL, ServerProcess,
                             b64, raw_predict_body, write_png)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
            rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),  # any size: the model resizes
            rng.uniform(-1, 1, 8), rng.standard_normal((HORIZON, ACTION_DIM)).astype(np.float32))


def _post(server, body, timeout=60):
    return requests.post(server.url + "/predict", json=body, timeout=timeout)


def test_health_reports_ready_and_the_model(shared_server, flashrt_bin):
    r = requests.get(shared_server.url + "/health", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    h = r.json()
    for key in ("status", "model", "config", "hardware", "version", "prompt", "ready"):
        assert key in h, key
    assert h["status"] == "ready" and h["ready"] is True
    assert h["config"] == "pi05" and h["hardware"] == "cpu" and h["prompt"] == DEFAULT_PROMPT
    assert h["model"].startswith("flashrt_srv_ckpt_")
    assert (h["action_horizon"], h["action_dim"], h["reply_action_dims"]) == (HORIZON, ACTION_DIM, 7)
    version = subprocess.run([str(flashrt_bin), "--version"], capture_output=True, text=True).stdout
    assert h["version"] in version
    assert requests.get(shared_server.url + "/healthz", timeout=10).text == "OK\n"


def test_unknown_route_and_wrong_method(shared_server):
    r = requests.get(shared_server.url + "/nope", timeout=10)
    assert r.status_code == 404 and "POST /predict" in r.json()["error"]
    r = requests.get(shared_server.url + "/predict", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.post(shared_server.url + "/health", timeout=10)
    assert r.status_code == 405


def test_predict_raw_and_png_match_inprocess(shared_server, inprocess_model):
    base, wrist, state, noise = _inputs(11)
    raw = _post(shared_server, {"images": [b64(base.tobytes())], "image_shape": [224, 224, 3],
                                "state": state.tolist(), "noise": noise.tolist(), "prompt": "stack"})
    assert raw.status_code == 200, raw.text
    out = raw.json()
    assert out["shape"] == [HORIZON, LIBERO_DIMS] and np.shape(out["actions"]) == (HORIZON, LIBERO_DIMS)
    assert out["latency_ms"] >= out["infer_ms"] > 0
    want = inprocess_model.predict([base], prompt="stack", state=state, noise=noise)[:, :LIBERO_DIMS]
    np.testing.assert_allclose(np.array(out["actions"]), want, **TOL)
    png = _post(shared_server, {"images": [b64(write_png(base)), b64(write_png(wrist))],
                                "state": state.tolist(), "noise": noise.flatten().tolist(),
                                "prompt": "stack"})
    assert png.status_code == 200, png.text
    want2 = inprocess_model.predict([base, wrist], prompt="stack", state=state, noise=noise)
    np.testing.assert_allclose(np.array(png.json()["actions"]), want2[:, :LIBERO_DIMS], **TOL)
    assert np.abs(want2[:, :LIBERO_DIMS] - want).max() > 100 * TOL["atol"]  # the wrist matters


def test_null_slot_is_masked_and_default_prompt_used(shared_server, inprocess_model):
    base, _, state, noise = _inputs(12)
    body = raw_predict_body([base, None], state=state, noise=noise)  # no prompt
    r = _post(shared_server, body)
    assert r.status_code == 200, r.text
    want = inprocess_model.predict([base, None], prompt=DEFAULT_PROMPT, state=state, noise=noise)
    np.testing.assert_allclose(np.array(r.json()["actions"]), want[:, :LIBERO_DIMS], **TOL)


def test_long_strings_fast_path_matches_plain_json(shared_server):
    # The server cuts long plain-ASCII string values out before nlohmann parses the rest
    # (src/server/http_json.cpp); escapes, placeholders look-alikes and errors take the plain path.
    import json

    base, _, state, noise = _inputs(14)
    img, prompt = b64(base.tobytes()), "p" * 3000
    body = json.dumps({"images": [img], "image_shape": [224, 224, 3], "state": state.tolist(),
                       "noise": noise.tolist(), "prompt": prompt})
    fast = requests.post(shared_server.url + "/predict", data=body, timeout=60)
    assert fast.status_code == 200, fast.text
    # The same document with JSON escapes in both long strings ("\/" for '/', "\u0070" for 'p'),
    # pretty-printed: nlohmann decodes these strings itself.
    escaped = json.dumps(json.loads(body), indent=2).replace("/", "\\/").replace(
        '"' + prompt, '"\\u0070' + prompt[1:])
    plain = requests.post(shared_server.url + "/predict", data=escaped, timeout=60)
    assert plain.status_code == 200, plain.text
    np.testing.assert_allclose(plain.json()["actions"], fast.json()["actions"], **TOL)
    # A string that looks like a placeholder ("\u0000" + index) is the client's: invalid base64.
    r = requests.post(shared_server.url + "/predict", data=body.replace('"images": [',
                      '"images": ["\\u00000", ', 1), timeout=60)
    assert r.status_code == 400 and "images[0]: invalid base64 character 0x00" in r.json()["error"]
    # A syntax error after the long strings is reported at its place in the body as sent.
    broken = body[:-1] + ",}"
    r = requests.post(shared_server.url + "/predict", data=broken, timeout=60)
    assert r.status_code == 400 and "bad JSON" in r.json()["error"]
    assert "column {}".format(len(broken)) in r.json()["error"], r.json()["error"]
    # Long keys stay in the parsed skeleton, so the error names them.
    r = requests.post(shared_server.url + "/predict", data=body[:-1] + ', "' + "k" * 2000 + '": 1}',
                      timeout=60)
    assert r.status_code == 400 and "unknown key 'kkkk" in r.json()["error"]
    # An unterminated long string.
    r = requests.post(shared_server.url + "/predict", data='{"images": ["' + img, timeout=60)
    assert r.status_code == 400 and "bad JSON" in r.json()["error"]
    # Deep nesting around a long string / in image_shape (its error message once dumped it
    # recursively, which 3 million levels overflowed): answered, and the server lives on.
    deep = 500_000
    r = requests.post(shared_server.url + "/predict", timeout=60,
                      data='{"images": [' + "[" * deep + '"' + img + '"' + "]" * deep + "]}")
    assert r.status_code == 400 and "images[0] must be a base64 string" in r.json()["error"]
    r = requests.post(shared_server.url + "/predict", timeout=60,
                      data='{"images": ["' + img + '"], "image_shape": ' + "[" * deep + "]" * deep + "}")
    assert r.status_code == 400 and "image_shape must be" in r.json()["error"]
    assert requests.post(shared_server.url + "/predict", data=body, timeout=60).status_code == 200


def _metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_by_status_and_histograms(shared_server):
    m0 = requests.get(shared_server.url + "/metrics", timeout=10).text
    base, _, state, _ = _inputs(13)
    assert _post(shared_server, raw_predict_body([base], state=state)).status_code == 200
    assert _post(shared_server, {"images": "nope"}).status_code == 400
    r = requests.get(shared_server.url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m1 = r.text
    for status in ("200", "400"):
        before = _metric(m0, "flashrt_requests_total", protocol="http", route="/predict", status=status)
        after = _metric(m1, "flashrt_requests_total", protocol="http", route="/predict", status=status)
        assert after == before + 1, status
    assert "# TYPE flashrt_inference_seconds histogram" in m1
    buckets = [float(l.rsplit(" ", 1)[1]) for l in m1.splitlines()
               if l.startswith("flashrt_inference_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == _metric(m1, "flashrt_inference_seconds_count") > 0
    assert _metric(m1, "flashrt_ready") == 1 and _metric(m1, "flashrt_queue_capacity") == 16


def _concurrent_posts(server, bodies, timeout=120):
    results = [None] * len(bodies)

    def go(i):
        try:
            results[i] = _post(server, bodies[i], timeout=timeout)
        except requests.RequestException as e:
            results[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 10)
    return results


def test_queue_overflow_is_503_with_retry_after(flashrt_bin, server_checkpoint):
    # 30 flow steps make each predict slow enough for 8 requests to pile up behind a queue of 1.
    server = ServerProcess(flashrt_bin, server_checkpoint, "--views", 1, "--horizon", 4,
                           "--steps", 30, "--queue-size", 1)
    try:
        base, _, state, _ = _inputs(14)
        body = raw_predict_body([base], state=state, prompt="go")
        results = _concurrent_posts(server, [body] * 8)
        codes = sorted(r.status_code for r in results)
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
        busy = next(r for r in results if r.status_code == 503)
        assert busy.headers["Retry-After"] == "1" and "busy" in busy.json()["error"]
        assert _post(server, body).status_code == 200  # and it still serves
    finally:
        assert server.stop() == 0, server.log()


def test_loading_state_and_api_key(flashrt_bin, server_checkpoint):
    # Many warm-up runs keep the server in "loading" long enough to look at it.
    server = ServerProcess(flashrt_bin, server_checkpoint, "--views", 1, "--horizon", 4,
                           "--warmup", 40, "--api-key", "s3cret", wait_ready=False)
    try:
        r = requests.get(server.url + "/health", timeout=10)
        assert r.status_code == 503 and r.json()["status"] == "loading" and r.json()["ready"] is False
        base, _, state, _ = _inputs(15)
        body = raw_predict_body([base], state=state, prompt="go")
        auth = {"Authorization": "Api-Key s3cret"}
        r = requests.post(server.url + "/predict", json=body, headers=auth, timeout=30)
        assert r.status_code == 503 and "loading" in r.json()["error"] and r.headers["Retry-After"] == "1"
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 503
        server.wait_ready()
        assert requests.post(server.url + "/predict", json=body, timeout=30).status_code == 401
        r = requests.post(server.url + "/predict", json=body, headers={"Authorization": "Api-Key no"},
                          timeout=30)
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert requests.post(server.url + "/predict", json=body, headers=auth, timeout=30).status_code == 200
    finally:
        assert server.stop() == 0, server.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_requests_and_exits_0(flashrt_bin, server_checkpoint, sig):
    # 1000 flow steps (~0.5 s per predict on the 2-core CI machine; 200 steps, ~0.1 s, once let
    # the first request finish before the fourth arrived): all 4 requests are in the server at once.
    server = ServerProcess(flashrt_bin, server_checkpoint, "--views", 1, "--horizon", 4, "--steps", 1000)
    base, _, state, _ = _inputs(16)
    body = raw_predict_body([base], state=state, prompt="go")
    results = []
    worker = threading.Thread(target=lambda: results.extend(_concurrent_posts(server, [body] * 4)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the requests are in the server
            m = requests.get(server.url + "/metrics", timeout=10).text
            if _metric(m, "flashrt_inflight_requests") == 4:
                break
            time.sleep(0.005)
        else:
            pytest.fail("requests never reached the server:\n" + server.log())
    finally:
        code = server.stop(sig)
        worker.join(120)
    assert code == 0, server.log()
    assert [getattr(r, "status_code", r) for r in results] == [200] * 4
    log = server.log()
    assert "draining" in log and "drained; exiting" in log
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/health", timeout=5)
