"""`flashrt serve` against the real openpi client (PyPI openpi-client's WebsocketClientPolicy).

- A LIBERO-shaped loop (examples/libero/main.py observations: 224x224x3 uint8 views, float64
  (8,) state, prompt; replanning from the first 5 of each chunk) gets (10, 7) float64 actions
  equal to flash_rt's in-process predict() for the same inputs and the same noise ("noise" key,
  a FlashRT extension), and far from the actions of other noise.
- Without noise, a fresh server with --seed S answers its first requests exactly as a fresh
  in-process model with seed S (warm-up does not advance the noise generator).
- DROID, ALOHA (CHW images, adapt_to_pi conversions, re-derived here from openpi's formulas)
  and model-level observations map to the same slots as openpi's input transforms.
- float [0, 1] LIBERO images become uint8 by openpi's truncation, CHW ones are transposed;
  model-level float images take the engine's float path; an error frame is raised by the
  client and the connection stays usable; pipelined observations are answered in order; pings
  are answered while the model runs; openpi's __ctrl__ messages are acknowledged; on SIGTERM
  queued observations are still answered, then the server closes with 1001 and exits 0.
Run: FLASHRT_BIN=build/flashrt FLASH_RT_LIBRARY=build/libflashrt.so python3 -m pytest
     tests/python/test_server_openpi.py -q
"""

import json
import shutil
import time

import numpy as np
import pytest
import requests

from server_fixtures import *  # noqa: F401,F403 - fixtures and helpers
from server_fixtures import (DEFAULT_PROMPT, HORIZON, ACTION_DIM, LIBERO_DIMS, TOL, ServerProcess,
                             libero_observation, ws_connect, ws_infer)


def _predict(model, images, obs_prompt, state, noise):
    return model.predict(images, prompt=obs_prompt, state=state, noise=noise)


def test_metadata_and_healthz(shared_server, openpi_client):
    from openpi_client import websocket_client_policy

    client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", shared_server.port)
    md = client.get_server_metadata()
    assert md["server"] == "flashrt" and md["action_horizon"] == HORIZON
    assert md["action_dim"] == ACTION_DIM and md["num_views"] == 2 and md["state_dim"] == 8
    r = requests.get(shared_server.url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.text == "OK\n"


def test_libero_loop_matches_inprocess_predict(shared_server, openpi_client, inprocess_model):
    from openpi_client import websocket_client_policy

    client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", shared_server.port)
    rng = np.random.default_rng(1)
    plan, replan_steps = [], 5
    for step in range(4):
        obs = libero_observation(rng)
        out = client.infer(obs)
        assert list(out) == ["actions", "policy_timing", "server_timing"]
        a = out["actions"]
        assert a.shape == (HORIZON, LIBERO_DIMS) and a.dtype == np.float64
        want = _predict(inprocess_model, [obs["observation/image"], obs["observation/wrist_image"]],
                        obs["prompt"], obs["observation/state"], obs["noise"])
        np.testing.assert_allclose(a, want[:, :LIBERO_DIMS], **TOL)
        other = _predict(inprocess_model, [obs["observation/image"], obs["observation/wrist_image"]],
                         obs["prompt"], obs["observation/state"], obs["noise"][::-1].copy())
        assert np.abs(a - other[:, :LIBERO_DIMS]).max() > 100 * TOL["atol"]  # the check can fail
        assert out["policy_timing"]["infer_ms"] > 0
        assert out["server_timing"]["infer_ms"] >= out["policy_timing"]["infer_ms"]
        assert ("prev_total_ms" in out["server_timing"]) == (step > 0)
        plan.extend(a[:replan_steps])
    assert len(plan) == 4 * replan_steps


def test_float_and_chw_images_follow_openpi(shared_server, openpi_client):
    conn, _ = ws_connect(shared_server)
    rng = np.random.default_rng(2)
    obs = libero_observation(rng)
    key = "observation/image"
    # Float in [0, 1] → uint8 as openpi's _parse_image does: (255 * x).astype(uint8), truncating.
    f = (obs[key].astype(np.float64) + 0.5) / 256
    trunc, rounded = (255 * f).astype(np.uint8), np.rint(255 * f).astype(np.uint8)
    got = ws_infer(conn, dict(obs, **{key: f}))["actions"]
    np.testing.assert_array_equal(got, ws_infer(conn, dict(obs, **{key: trunc}))["actions"])
    assert not np.array_equal(got, ws_infer(conn, dict(obs, **{key: rounded}))["actions"])
    # CHW (3, H, W) → HWC, as openpi's einops "c h w -> h w c".
    base = ws_infer(conn, obs)["actions"]
    chw = np.ascontiguousarray(obs["observation/wrist_image"].transpose(2, 0, 1))
    np.testing.assert_array_equal(
        ws_infer(conn, dict(obs, **{"observation/wrist_image": chw}))["actions"], base)
    conn.close()


def test_fixed_seed_without_noise(flashrt_bin, server_checkpoint, openpi_client, flash_rt_engine):
    from openpi_client import websocket_client_policy

    server = ServerProcess(flashrt_bin, server_checkpoint, "--views", 2, "--horizon", HORIZON,
                           "--seed", 7, "--warmup", 2)
    try:
        client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", server.port)
        model = flash_rt_engine.load_model(
            str(server_checkpoint), config="pi05", num_views=2, hardware="cpu",
            action_horizon=HORIZON, seed=7,
            tokenizer_path=str(server_checkpoint / "paligemma_tokenizer.model"))
        rng = np.random.default_rng(3)
        firsts = []
        for _ in range(2):  # the generator advances identically on both sides
            obs = libero_observation(rng, noise=False)
            got = client.infer(obs)["actions"]
            want = model.predict([obs["observation/image"], obs["observation/wrist_image"]],
                                 prompt=obs["prompt"], state=obs["observation/state"])
            np.testing.assert_allclose(got, want[:, :LIBERO_DIMS], **TOL)
            firsts.append(got)
        assert np.abs(firsts[0] - firsts[1]).max() > 1e-2
    finally:
        assert server.stop() == 0, server.log()


def test_droid_layout(shared_server, openpi_client, inprocess_model):
    conn, _ = ws_connect(shared_server)
    rng = np.random.default_rng(4)
    ext = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    joints, gripper = rng.uniform(-1, 1, 7), rng.uniform(0, 1, 1)
    noise = rng.standard_normal((HORIZON, ACTION_DIM)).astype(np.float32)
    out = ws_infer(conn, {"observation/exterior_image_1_left": ext,
                          "observation/wrist_image_left": wrist,
                          "observation/joint_position": joints,
                          "observation/gripper_position": gripper,
                          "prompt": "open the drawer", "noise": noise})
    assert out["actions"].shape == (HORIZON, 8)  # DroidOutputs: first 8 dims
    want = inprocess_model.predict([ext, wrist], prompt="open the drawer",
                                   state=np.concatenate([joints, gripper]), noise=noise)
    np.testing.assert_allclose(out["actions"], want[:, :8], **TOL)
    conn.close()


def test_model_level_layout_and_mask(shared_server, openpi_client, inprocess_model):
    conn, _ = ws_connect(shared_server)
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    state = rng.uniform(-1, 1, 8)
    noise = rng.standard_normal((HORIZON, ACTION_DIM)).astype(np.float32)
    obs = {"image": {"base_0_rgb": base, "left_wrist_0_rgb": wrist},
           "image_mask": {"base_0_rgb": np.True_, "left_wrist_0_rgb": np.False_},
           "state": state, "noise": noise}  # no prompt: the server's --default-prompt
    out = ws_infer(conn, obs)
    assert out["actions"].shape == (HORIZON, LIBERO_DIMS)  # the norm stats cover 7 dims
    want = inprocess_model.predict([base, None], prompt=DEFAULT_PROMPT, state=state, noise=noise)
    np.testing.assert_allclose(out["actions"], want[:, :LIBERO_DIMS], **TOL)
    unmasked = inprocess_model.predict([base, wrist], prompt=DEFAULT_PROMPT, state=state, noise=noise)
    assert np.abs(out["actions"] - unmasked[:, :LIBERO_DIMS]).max() > 100 * TOL["atol"]
    # Model-level float images in [0, 1] take the engine's float path (rounding), like predict().
    fbase = (base.astype(np.float32) + 0.5) / 256
    out = ws_infer(conn, {"image": {"base_0_rgb": fbase}, "state": state, "noise": noise})
    want = inprocess_model.predict([fbase], prompt=DEFAULT_PROMPT, state=state, noise=noise)
    np.testing.assert_allclose(out["actions"], want[:, :LIBERO_DIMS], **TOL)
    err = ws_infer(conn, {"image": {"base_0_rgb": base, "right_wrist_0_rgb": wrist}, "state": state})
    assert isinstance(err, str) and err.startswith("400 Bad Request: ") and "--views 3" in err
    conn.close()


def _aloha_checkpoint(src, dst):
    """The tiny checkpoint with 14-dim state/action norm stats (ALOHA's two 7-dof arms)."""
    shutil.copytree(src, dst)
    (path,) = list((dst / "assets").glob("*/norm_stats.json"))
    stats = json.loads(path.read_text())
    fill = {"mean": 0.0, "std": 1.0, "q01": -1.0, "q99": 1.0}
    for part in ("state", "actions"):
        for k, v in stats["norm_stats"][part].items():
            stats["norm_stats"][part][k] = (v + [fill[k]] * 14)[:14]
    path.write_text(json.dumps(stats))
    return dst


# openpi aloha_policy.py (adapt_to_pi=True), written again here from its formulas.
_FLIP = np.array([1, -1, -1, 1, 1, 1, 1, 1, -1, -1, 1, 1, 1, 1], dtype=np.float64)


def _aloha_state_to_pi(state):
    s = _FLIP * state
    v = s[[6, 13]] * (0.05800 - 0.01844) + 0.01844
    r = np.arcsin(np.clip((0.022 ** 2 + v ** 2 - 0.036 ** 2) / (2 * 0.022 * v), -1.0, 1.0))
    s[[6, 13]] = (r - 0.5476) / (1.6296 - 0.5476)
    return s


def _aloha_actions_from_pi(actions):
    a = _FLIP * actions[:, :14].astype(np.float64)
    a[:, [6, 13]] = (a[:, [6, 13]] + 0.5476 - -0.6213) / (1.4910 - -0.6213)
    return a


def test_aloha_layout(flashrt_bin, server_checkpoint, openpi_client, flash_rt_engine, tmp_path):
    ckpt = _aloha_checkpoint(server_checkpoint, tmp_path / "aloha")
    server = ServerProcess(flashrt_bin, ckpt, "--views", 3, "--horizon", HORIZON)
    try:
        model = flash_rt_engine.load_model(str(ckpt), config="pi05", num_views=3, hardware="cpu",
                                           action_horizon=HORIZON,
                                           tokenizer_path=str(ckpt / "paligemma_tokenizer.model"))
        conn, md = ws_connect(server)
        assert md["state_dim"] == 14
        rng = np.random.default_rng(6)
        cams = {k: rng.integers(0, 256, (3, 224, 224), dtype=np.uint8)
                for k in ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")}
        state = np.concatenate([rng.uniform(-0.5, 0.5, 6), [0.6], rng.uniform(-0.5, 0.5, 6), [0.3]])
        noise = rng.standard_normal((HORIZON, ACTION_DIM)).astype(np.float32)
        out = ws_infer(conn, {"images": cams, "state": state, "prompt": "fold", "noise": noise})
        hwc = {k: np.ascontiguousarray(v.transpose(1, 2, 0)) for k, v in cams.items()}
        raw = model.predict([hwc["cam_high"], hwc["cam_left_wrist"], hwc["cam_right_wrist"]],
                            prompt="fold", state=_aloha_state_to_pi(state), noise=noise)
        assert out["actions"].shape == (HORIZON, 14)
        np.testing.assert_allclose(out["actions"], _aloha_actions_from_pi(raw), **TOL)
        # A missing wrist camera is masked, as openpi pads it with zeros and mask False.
        out2 = ws_infer(conn, {"images": {"cam_high": cams["cam_high"]}, "state": state,
                               "prompt": "fold", "noise": noise})
        raw2 = model.predict([hwc["cam_high"], None, None], prompt="fold",
                             state=_aloha_state_to_pi(state), noise=noise)
        np.testing.assert_allclose(out2["actions"], _aloha_actions_from_pi(raw2), **TOL)
        err = ws_infer(conn, {"images": dict(cams, cam_extra=cams["cam_low"]), "state": state})
        assert isinstance(err, str) and "unknown camera 'cam_extra'" in err
        conn.close()
    finally:
        assert server.stop() == 0, server.log()


def test_error_frame_is_raised_and_connection_stays_usable(shared_server, openpi_client):
    from openpi_client import websocket_client_policy

    client = websocket_client_policy.WebsocketClientPolicy("127.0.0.1", shared_server.port)
    rng = np.random.default_rng(7)
    bad = libero_observation(rng)
    bad["observation/state"] = bad["observation/state"][:7]
    with pytest.raises(RuntimeError, match="observation/state has 7 values"):
        client.infer(bad)
    assert client.infer(libero_observation(rng))["actions"].shape == (HORIZON, LIBERO_DIMS)


def test_pipelined_observations_are_answered_in_order(shared_server, openpi_client, inprocess_model):
    conn, _ = ws_connect(shared_server)
    from openpi_client import msgpack_numpy

    rng = np.random.default_rng(8)
    obs = [libero_observation(rng) for _ in range(3)]
    bad = dict(obs[0], **{"observation/state": np.full(8, np.nan)})
    for o in (obs[0], bad, obs[1], obs[2]):
        conn.send(msgpack_numpy.packb(o))
    replies = [conn.recv(timeout=60) for _ in range(4)]
    assert isinstance(replies[1], str) and "observation/state[0] is nan" in replies[1]
    for o, r in zip(obs, (replies[0], replies[2], replies[3])):
        want = inprocess_model.predict([o["observation/image"], o["observation/wrist_image"]],
                                       prompt=o["prompt"], state=o["observation/state"],
                                       noise=o["noise"])
        np.testing.assert_allclose(msgpack_numpy.unpackb(r)["actions"], want[:, :LIBERO_DIMS], **TOL)
    conn.close()


def test_ping_is_answered_while_the_model_runs(shared_server, openpi_client):
    conn, _ = ws_connect(shared_server)
    from openpi_client import msgpack_numpy

    rng = np.random.default_rng(9)
    msgs = [msgpack_numpy.packb(libero_observation(rng)) for _ in range(5)]
    for m in msgs:
        conn.send(m)
    t0 = time.monotonic()
    assert conn.ping().wait(30)
    pong_s = time.monotonic() - t0
    for _ in msgs:
        assert isinstance(conn.recv(timeout=60), bytes)
    all_s = time.monotonic() - t0
    assert pong_s < all_s, (pong_s, all_s)  # the pong did not wait for the 5 predicts
    conn.close()


def test_ctrl_messages_are_acknowledged(shared_server, openpi_client):
    conn, _ = ws_connect(shared_server)
    assert ws_infer(conn, {"__ctrl__": "episode_start", "__task__": "t"}) == {"__ack__": "episode_start"}
    assert ws_infer(conn, {"__ctrl__": "something"}) == {"__ack__": "ignored"}
    conn.close()


def test_sigterm_answers_queued_observations_then_closes_1001(flashrt_bin, server_checkpoint,
                                                               openpi_client):
    import signal

    import websockets

    from openpi_client import msgpack_numpy

    server = ServerProcess(flashrt_bin, server_checkpoint, "--views", 1, "--horizon", 4,
                           "--steps", 200, "--default-prompt", "go")
    try:
        conn, _ = ws_connect(server)
        rng = np.random.default_rng(10)
        obs = {"image": {"base_0_rgb": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)},
               "state": rng.uniform(-1, 1, 8)}
        for _ in range(3):
            conn.send(msgpack_numpy.packb(obs))
        deadline = time.monotonic() + 30
        while "flashrt_inflight_requests 3" not in requests.get(server.url + "/metrics", timeout=10).text:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.005)
        server.proc.send_signal(signal.SIGTERM)
        for _ in range(3):  # every queued observation is still answered
            assert msgpack_numpy.unpackb(conn.recv(timeout=60))["actions"].shape == (4, 7)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            conn.recv(timeout=30)
        assert closed.value.rcvd.code == 1001  # going away
        assert server.proc.wait(30) == 0, server.log()
    finally:
        assert server.stop() == 0, server.log()
