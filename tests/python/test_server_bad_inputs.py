"""A corpus of malformed requests to `flashrt serve`: each case asserts the exact HTTP status
(or, on the websocket, an error text frame that starts with the status and names the problem)
and then that the next good request on the same server (same websocket connection) succeeds.

HTTP: bad JSON, NaN literal, wrong types, unknown keys, bad / truncated base64, wrong raw
sizes, wrong channel counts, oversized images, non-images, truncated PNG, wrong state length,
inf state, bad noise, missing state, too-large bodies and Content-Length (413), a malformed
request line, 404 / 405.
Websocket: binary garbage, truncated and empty msgpack, trailing bytes, a forged 4-billion-entry
array, deep nesting, non-map messages, text frames, missing / unknown keys, wrong image dtypes
/ shapes / ranges, NaN / inf / wrong-length state, inconsistent ndarrays, unsupported dtypes,
bad prompt and noise, an oversized message (413, then the connection still works); garbage on
one connection does not disturb another.
Run: FLASHRT_BIN=build/flashrt python3 -m pytest tests/python/test_server_bad_inputs.py -q
"""

import json
import socket
import threading

import numpy as np
import pytest
import requests

from server_fixtures import *  # noqa: F401,F403 - fixtures and helpers
from server_fixtures import HORIZON, LIBERO_DIMS, b64, libero_observation, write_png, ws_connect

RNG = np.random.default_rng(21)
IMG = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
GOOD = {"images": [b64(IMG.tobytes())], "image_shape": [64, 64, 3], "state": [0.1] * 8,
        "prompt": "go"}


def _body(**changes):
    body = dict(GOOD)
    for k, v in changes.items():
        if v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    return json.dumps(body)


_DROP = object()
PNG = write_png(IMG)

# (case id, raw body, expected status, fragment of the error message)
HTTP_CASES = [
    ("bad_json", "{\"images\": [", 400, "bad JSON"),
    ("nan_literal", _body().replace("0.1,", "NaN,", 1), 400, "bad JSON"),
    ("not_an_object", "[1, 2]", 400, "must be a JSON object"),
    ("unknown_key", _body(foo=1), 400, "unknown key 'foo'"),
    ("missing_images", _body(images=_DROP), 400, "missing key 'images'"),
    ("images_not_list", _body(images="abc"), 400, "images must be a list"),
    ("images_empty", _body(images=[]), 400, "images has 0 entries"),
    ("too_many_images", _body(images=[GOOD["images"][0]] * 3), 400, "images has 3 entries"),
    ("image_not_string", _body(images=[12]), 400, "must be a base64 string or null"),
    ("bad_base64_char", _body(images=["AAA*"]), 400, "invalid base64 character 0x2a"),
    ("truncated_base64", _body(images=[GOOD["images"][0][:-3]]), 400, "do not make whole bytes"),
    ("raw_size_mismatch", _body(images=[b64(IMG.tobytes()[:-3])]), 400, "raw bytes; image_shape"),
    ("four_channels", _body(image_shape=[64, 48, 4]), 400, "expected 3 (RGB)"),
    ("shape_not_ints", _body(image_shape=[64.5, 64, 3]), 400, "image_shape must be"),
    ("image_too_large", _body(image_shape=[3000, 3000, 3]), 400, "at most 2048*2048"),
    ("not_an_image", _body(image_shape=_DROP, images=[b64(b"hello, not a picture")]), 400,
     "not a PNG, JPEG or BMP"),
    ("truncated_png", _body(image_shape=_DROP, images=[b64(PNG[:60])]), 400, "cannot decode"),
    ("data_url_not_base64", _body(image_shape=_DROP, images=["data:image/png," + b64(PNG)]), 400,
     "data URL must be base64"),
    ("all_images_null", _body(images=[None]), 400, "every image is null"),
    ("state_too_short", _body(state=[0.1] * 7), 400, "state has 7 values"),
    ("number_overflow", _body().replace("[0.1,", "[1e999,", 1), 400, "bad JSON"),
    ("state_overflows_float32", _body().replace("[0.1,", "[1e39,", 1), 400, "state[0] is 1e+39"),
    ("state_not_number", _body(state=[0.1, "x"] + [0.1] * 6), 400, "state[1] must be a number"),
    ("missing_state", _body(state=_DROP), 400, "state is required"),
    ("noise_wrong_count", _body(noise=[0.0] * 7), 400, "noise has 7 values"),
    ("prompt_not_string", _body(prompt=5), 400, "prompt must be a string"),
]


def _good_http(server):
    r = requests.post(server.url + "/predict", data=json.dumps(GOOD), timeout=60)
    assert r.status_code == 200, r.text
    assert np.shape(r.json()["actions"]) == (HORIZON, LIBERO_DIMS)


@pytest.mark.parametrize("case,body,status,fragment", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_http_bad_body(shared_server, case, body, status, fragment):
    r = requests.post(shared_server.url + "/predict", data=body,
                      headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"], r.json()["error"]
    _good_http(shared_server)


def _raw_http(port, data, timeout=30):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ")[1])


@pytest.mark.parametrize("case,request_bytes,status", [
    ("malformed_request_line", b"HELLO THERE\r\n\r\n", 400),
    ("content_length_too_big", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}", 413),
    ("header_too_big", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
])
def test_http_malformed_transport(shared_server, case, request_bytes, status):
    assert _raw_http(shared_server.port, request_bytes) == status
    _good_http(shared_server)


def test_http_body_too_large_is_413(shared_server):
    big = json.dumps(dict(GOOD, prompt="x" * (3 << 20)))  # over the fixture's 2 MiB limit
    r = requests.post(shared_server.url + "/predict", data=big, timeout=60)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]
    _good_http(shared_server)


@pytest.mark.parametrize("method,path,status", [("GET", "/predict", 405), ("PUT", "/health", 405),
                                                ("GET", "/v1/infer", 404)])
def test_http_wrong_route(shared_server, method, path, status):
    assert requests.request(method, shared_server.url + path, timeout=10).status_code == status
    _good_http(shared_server)


# ---- websocket ------------------------------------------------------------------------------

def _pack(obj):
    from openpi_client import msgpack_numpy

    return msgpack_numpy.packb(obj)


def _obs(**changes):
    obs = libero_observation(np.random.default_rng(22), noise=False)
    for k, v in changes.items():
        if v is _DROP:
            obs.pop(k)
        else:
            obs[k] = v
    return obs


def _ndarray(data, dtype, shape):
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def _with_invalid_utf8_prompt():
    msg = bytearray(_pack(_obs(prompt=_DROP)))
    assert 0x80 <= msg[0] <= 0x8E  # a fixmap: one more entry fits in its header
    msg[0] += 1
    return bytes(msg) + b"\xa6prompt" + b"\xa2\xff\xfe"


def _with_invalid_utf8_key():
    msg = bytearray(_pack(_obs()))
    msg[0] += 1  # one more entry in the fixmap: a str key that is not UTF-8, value nil
    return bytes(msg) + b"\xa2\xff\xfe" + b"\xc0"


def _good():
    return _pack(_obs())


def _img():
    return _obs()["observation/image"]


# (case id, message builder (called inside the test: openpi_client may be missing at
# collection time), fragment of the error message)
WS_CASES = [
    ("binary_garbage", lambda: np.random.default_rng(23).integers(0, 256, 3000, dtype=np.uint8).tobytes(), ""),
    ("truncated_msgpack", lambda: _good()[: len(_good()) // 2], "truncated msgpack"),
    ("empty_message", lambda: b"", "truncated msgpack"),
    ("trailing_bytes", lambda: _good() + b"\x01", "trailing bytes"),
    ("forged_huge_array", lambda: b"\xdd\xff\xff\xff\xff", "too large or too deeply nested"),
    ("deep_nesting", lambda: _pack({"x": json.loads("[" * 40 + "]" * 40)}), "too large or too deeply nested"),
    ("not_a_map", lambda: _pack([1, 2, 3]), "expected the observation as a msgpack map"),
    ("text_frame", lambda: "hello", "got a text frame"),
    ("no_layout_keys", lambda: _pack({"foo": 1}), "cannot tell the observation layout"),
    ("missing_wrist_image", lambda: _pack(_obs(**{"observation/wrist_image": _DROP})),
     "missing key 'observation/wrist_image'"),
    ("unknown_key", lambda: _pack(_obs(extra=1)), "unknown key 'extra'"),
    ("image_int64", lambda: _pack(_obs(**{"observation/image": _img().astype(np.int64)})), "dtype <i8"),
    ("image_rgba", lambda: _pack(_obs(**{"observation/image": np.zeros((224, 224, 4), np.uint8)})),
     "image shape (224, 224, 4)"),
    ("image_grayscale", lambda: _pack(_obs(**{"observation/image": np.zeros((224, 224), np.uint8)})),
     "grayscale"),
    ("image_float_out_of_range", lambda: _pack(_obs(**{"observation/image": _img().astype(np.float32)})),
     "expected [0, 1]"),
    ("image_not_ndarray", lambda: _pack(_obs(**{"observation/image": [1, 2, 3]})), "expected a numpy array"),
    ("state_nan", lambda: _pack(_obs(**{"observation/state": np.array([np.nan] + [0.0] * 7)})),
     "observation/state[0] is nan"),
    ("state_inf", lambda: _pack(_obs(**{"observation/state": np.array([0.0, np.inf] + [0.0] * 6)})),
     "observation/state[1] is inf"),
    ("state_wrong_length", lambda: _pack(_obs(**{"observation/state": np.zeros(9)})), "has 9 values"),
    ("state_string", lambda: _pack(_obs(**{"observation/state": "abc"})), "expected a number"),
    ("ndarray_size_mismatch",
     lambda: _pack(_obs(**{"observation/state": _ndarray(b"\x00" * 12, "<f8", [8])})), "ndarray data has 12 bytes"),
    ("ndarray_negative_shape",
     lambda: _pack(_obs(**{"observation/state": _ndarray(b"", "<f8", [-1])})), "shape[0] must be an integer"),
    ("big_endian_dtype", lambda: _pack(_obs(**{"observation/state": np.zeros(8, ">f8")})),
     "dtype '>f8' is not supported"),
    ("unicode_dtype", lambda: _pack(_obs(**{"observation/state": np.array(["a"] * 8)})), "is not supported"),
    ("prompt_not_str", lambda: _pack(_obs(prompt=7)), "prompt must be a str"),
    ("prompt_invalid_utf8", lambda: _with_invalid_utf8_prompt(), "prompt is not valid UTF-8"),
    # The error quotes the key: the text frame must still be valid UTF-8 (else the client drops
    # the connection), so the bad bytes come back escaped.
    ("key_invalid_utf8", lambda: _with_invalid_utf8_key(), "unknown key '\\xff\\xfe'"),
    ("noise_wrong_shape", lambda: _pack(_obs(noise=np.zeros((HORIZON, 7), np.float32))), "noise has 70 values"),
]


def _good_ws(conn):
    from openpi_client import msgpack_numpy

    conn.send(_pack(_obs()))
    reply = conn.recv(timeout=60)
    assert isinstance(reply, bytes), reply
    assert msgpack_numpy.unpackb(reply)["actions"].shape == (HORIZON, LIBERO_DIMS)


@pytest.mark.parametrize("case,build,fragment", WS_CASES, ids=[c[0] for c in WS_CASES])
def test_websocket_bad_message(shared_server, openpi_client, case, build, fragment):
    conn, _ = ws_connect(shared_server)
    try:
        conn.send(build())
        reply = conn.recv(timeout=60)
        assert isinstance(reply, str), "expected an error text frame"
        assert reply.startswith("400 Bad Request: "), reply
        assert fragment in reply, reply
        _good_ws(conn)  # the same connection keeps working
    finally:
        conn.close()


def test_websocket_oversized_message_is_413_and_connection_survives(shared_server, openpi_client):
    conn, _ = ws_connect(shared_server)
    try:
        conn.send(b"\x00" * (3 << 20))  # over the fixture's 2 MiB limit
        reply = conn.recv(timeout=60)
        assert isinstance(reply, str) and reply.startswith("413 Payload Too Large: message of 3145728 bytes")
        _good_ws(conn)
    finally:
        conn.close()


def test_garbage_on_one_connection_does_not_disturb_another(shared_server, openpi_client):
    rng = np.random.default_rng(24)
    stop, errors = threading.Event(), []

    def spam():
        conn, _ = ws_connect(shared_server)
        try:
            while not stop.is_set():
                conn.send(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
                if not isinstance(conn.recv(timeout=30), str):
                    errors.append("garbage got a binary reply")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            conn.close()

    t = threading.Thread(target=spam)
    t.start()
    try:
        conn, _ = ws_connect(shared_server)
        for _ in range(5):
            _good_ws(conn)
        conn.close()
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    _good_http(shared_server)
