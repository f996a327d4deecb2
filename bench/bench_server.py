#!/usr/bin/env python3
"""Round-trip overhead of `flashrt serve` over in-process predict, on loopback.

Checks first (a served reply equals the in-process predict for the same inputs and noise),
then times N requests per protocol after a warm-up:
  - openpi websocket (openpi-client's WebsocketClientPolicy, LIBERO-style: 2 views 224x224x3
    uint8, float64 state, prompt, fixed noise);
  - HTTP JSON (POST /predict with raw base64 images);
  - both again through lean clients (raw sockets, request bytes built once: no per-request
    packing, masking, reader thread or requests-library cost; the websocket one speaks RFC 6455
    with openpi's message bytes), which separates the server's overhead from the Python clients'
    own cost on the same wire bytes;
and, with the server stopped, the same predict in this process through flash_rt.
Per request, overhead = client round trip - the server's own predict time (policy_timing /
infer_ms of that very request): transport, (de)serialization, queueing and mapping, free of the
predict's run-to-run noise; "inside the server" = the server's own message-to-reply time
(server_timing.infer_ms / latency_ms) - predict. Also: round-trip p50 - in-process p50.
Prints a table and one JSON line per protocol.

  python3 bench/bench_server.py                       # tiny synthetic checkpoint on the CPU
  python3 bench/bench_server.py --checkpoint /ckpt/pi05_libero --hardware cuda --iters 200
Needs: a built `flashrt` ($FLASHRT_BIN or build/flashrt), libflashrt.so ($FLASH_RT_LIBRARY or
build/), openpi-client, requests.
"""

import argparse
import base64
import json
import os
import pathlib
import socket
import struct
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "python"))


def pct(values, p):
    return float(np.percentile(np.asarray(values, dtype=np.float64), p))


class LeanWebsocket:
    """A minimal RFC 6455 client for timing: one binary message out, one in. The request frame
    is built once (masked with an all-zero key, which leaves the payload as is and is valid: the
    key is arbitrary), so a round trip costs one sendall and the reads of the reply."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: {}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").format(port, key).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("server closed the websocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("handshake refused: " + head.split(b"\r\n", 1)[0].decode())
        self.buf = bytearray(head.split(b"\r\n\r\n", 1)[1])
        self.metadata = self.recv()  # the server speaks first: its metadata

    @staticmethod
    def frame(payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x82, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
        return head + b"\0\0\0\0" + payload

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise RuntimeError("server closed the connection")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        payload = self._read(n)
        if (b0 & 0x0F) == 0x1:
            raise RuntimeError("server error: " + payload.decode("utf-8", "replace"))
        return payload

    def round_trip(self, frame):
        self.sock.sendall(frame)
        return self.recv()


class LeanHttp:
    """Keep-alive HTTP/1.1 over a raw socket with the request bytes built once: what the server
    adds to a POST /predict, without the requests library's per-call cost."""

    def __init__(self, port, body):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = body.encode()
        self.request = ("POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: "
                        "application/json\r\nContent-Length: {}\r\n\r\n").format(
                            port, len(data)).encode() + data
        self.buf = bytearray()

    def round_trip(self):
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, rest = bytes(self.buf).split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("reply without Content-Length: " + status.decode())
        self.buf = bytearray(rest)
        while len(self.buf) < length:
            self._more()
        body = bytes(self.buf[:length])
        del self.buf[:length]
        if b" 200 " not in status + b" ":
            raise RuntimeError(status.decode() + ": " + body.decode("utf-8", "replace"))
        return json.loads(body)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("server closed the connection")
        self.buf += chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("FLASHRT_BIN", str(REPO / "build" / "flashrt")))
    ap.add_argument("--checkpoint", help="default: a tiny synthetic one written to a temp dir")
    ap.add_argument("--hardware", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--omp-threads", default="1", help="OMP_NUM_THREADS of the server and this "
                    "process (CPU backend); '' leaves it unset")
    ap.add_argument("--json", action="store_true", help="print only the JSON lines")
    args = ap.parse_args()
    if args.omp_threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = args.omp_threads

    from openpi_client import msgpack_numpy, websocket_client_policy
    from server_fixtures import ServerProcess

    ckpt = pathlib.Path(args.checkpoint or tempfile.mkdtemp(prefix="flashrt_bench_ckpt_"))
    if not args.checkpoint:
        subprocess.run([args.bin, "make-checkpoint", str(ckpt)], check=True, capture_output=True)
        import atexit

        atexit.register(shutil.rmtree, ckpt, True)
    tok = ckpt / "paligemma_tokenizer.model"
    rng = np.random.default_rng(0)
    views = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(args.views)]
    state = rng.uniform(-1, 1, 8)
    prompt = "pick up the black bowl and place it on the plate"
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr))

    server = ServerProcess(args.bin, ckpt, "--views", args.views, "--horizon", args.horizon,
                           "--steps", args.steps, "--warmup", 3, hardware=args.hardware,
                           omp_threads=args.omp_threads)
    info = requests.get(server.url + "/health", timeout=10).json()
    D, H, state_dim = info["action_dim"], info["action_horizon"], info["state_dim"]
    state = rng.uniform(-1, 1, state_dim)
    noise = rng.standard_normal((H, D)).astype(np.float32)
    obs = {"observation/image": views[0], "observation/wrist_image": views[-1],
           "observation/state": state, "prompt": prompt, "noise": noise}
    body = json.dumps({"images": [base64.b64encode(v.tobytes()).decode() for v in views[:2]],
                       "image_shape": [224, 224, 3], "state": state.tolist(),
                       "noise": noise.tolist(), "prompt": prompt})
    results = {}
    try:
        client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", server.port)
        session = requests.Session()
        served = client.infer(obs)["actions"]
        lean = LeanWebsocket(server.port)
        lean_frame = LeanWebsocket.frame(msgpack_numpy.packb(obs))
        lean_actions = msgpack_numpy.unpackb(lean.round_trip(lean_frame))["actions"]
        if not np.array_equal(lean_actions, served):
            sys.exit("the lean websocket client got other actions than openpi-client")
        lean_http = LeanHttp(server.port, body)
        for name in ("websocket", "websocket-lean", "http", "http-lean"):
            rt, infer, total = [], [], []
            for i in range(args.warmup + args.iters):
                t0 = time.perf_counter()
                if name == "websocket":
                    out = client.infer(obs)
                    ms, server_ms = out["policy_timing"]["infer_ms"], out["server_timing"]["infer_ms"]
                elif name == "websocket-lean":
                    out = msgpack_numpy.unpackb(lean.round_trip(lean_frame))
                    ms, server_ms = out["policy_timing"]["infer_ms"], out["server_timing"]["infer_ms"]
                elif name == "http-lean":
                    out = lean_http.round_trip()
                    ms, server_ms = out["infer_ms"], out["latency_ms"]
                else:
                    r = session.post(server.url + "/predict", data=body, timeout=120)
                    r.raise_for_status()
                    ms, server_ms = r.json()["infer_ms"], r.json()["latency_ms"]
                if i >= args.warmup:
                    rt.append((time.perf_counter() - t0) * 1000)
                    infer.append(ms)
                    total.append(server_ms)
            results[name] = (rt, infer, total)
    finally:
        server.stop()

    import flash_rt

    model = flash_rt.load_model(str(ckpt), num_views=args.views, hardware=args.hardware,
                                use_fp8=None if args.hardware != "cpu" else False,
                                action_horizon=args.horizon, num_steps=args.steps,
                                tokenizer_path=str(tok) if tok.exists() else None)
    imgs = [views[0], views[-1]] if args.views >= 2 else [views[0]]
    want = model.predict(imgs, prompt=prompt, state=state, noise=noise)
    err = float(np.abs(served - want[:, :served.shape[1]]).max())
    log("check: served actions vs in-process predict, max |diff| = {:.2e}".format(err))
    if err > 1e-3 * max(1.0, float(np.abs(want).max())):
        sys.exit("served actions differ from the in-process predict (max |diff| {})".format(err))
    local = []
    for i in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        model.predict(imgs, prompt=prompt, state=state, noise=noise)
        if i >= args.warmup:
            local.append((time.perf_counter() - t0) * 1000)

    log("{} on {} ({}), {} view(s) 224x224, horizon {}, {} iters after {} warm-up".format(
        info["config"], info["hardware"], info.get("device"), args.views, H, args.iters, args.warmup))
    log("in-process predict: p50 {:.3f} ms  p99 {:.3f} ms".format(pct(local, 50), pct(local, 99)))
    for name, (rt, infer, total) in results.items():
        over = np.asarray(rt) - np.asarray(infer)
        inside = np.asarray(total) - np.asarray(infer)  # parse, map, queue, reply inside the server
        line = {"bench": "server_overhead", "protocol": name, "hardware": info["hardware"],
                "device": info.get("device"), "views": args.views, "horizon": H,
                "iters": args.iters, "rt_p50_ms": pct(rt, 50), "rt_p99_ms": pct(rt, 99),
                "server_predict_p50_ms": pct(infer, 50), "overhead_p50_ms": pct(over, 50),
                "overhead_p99_ms": pct(over, 99), "server_side_p50_ms": pct(inside, 50),
                "inprocess_p50_ms": pct(local, 50),
                "inprocess_p99_ms": pct(local, 99),
                "rt_p50_minus_inprocess_p50_ms": pct(rt, 50) - pct(local, 50)}
        log("{:14s}: round trip p50 {:.3f} p99 {:.3f} ms | overhead (rt - server predict) p50 "
            "{:.3f} p99 {:.3f} ms (inside the server p50 {:.3f}) | rt p50 - in-process p50 "
            "{:+.3f} ms".format(name, line["rt_p50_ms"], line["rt_p99_ms"], line["overhead_p50_ms"],
                                line["overhead_p99_ms"], line["server_side_p50_ms"],
                                line["rt_p50_minus_inprocess_p50_ms"]))
        print(json.dumps(line))


if __name__ == "__main__":
    main()
