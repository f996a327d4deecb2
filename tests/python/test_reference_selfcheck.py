"""Self-check of the PyTorch reference (tests/reference/), no engine needed; CPU, torch 1.13+.

Covers: the numpy safetensors reader (dtypes, bf16 bits, corrupt headers); openpi's input side
(digitize edge cases, prompt format, tokenization with padding/truncation, quantile
normalize/unnormalize and its 1e-6, resize-with-pad geometry and values against an
independent numpy bilinear); the model's invariants that openpi's padded formulation implies
(dropping masked/padded tokens, an extra masked view slot or longer text padding change no
valid row), the Euler step count, fp32 vs fp64 agreement, and that TF32 is off. Pi0 (on a
python-written tiny pi0 checkpoint): the suffix masks (the state token sees the prefix and
itself, never the actions: its hidden state is independent of x_t and equals running it alone),
padded vs compact and masked-slot / text-padding invariance, the prompt format (BOS + text +
"\n", cut at 48), z-score state normalization + zero padding to 32, z-score unnormalize, the
Euler step count, fp32 vs fp64, and that each class refuses the other's checkpoint.
Run: /usr/bin/python3 -m pytest tests/python/test_reference_selfcheck.py -q
"""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import check_close, cos, max_abs
from reference import openpi_inputs as oi
from reference import pi05_reference as pr
from reference.pi0_family_reference import Pi0Reference
from reference.safetensors_np import (SafetensorsFile, bf16_bits_to_f32, f32_to_bf16_bits,
                                      write_safetensors)

# ---------------------------------------------------------------- safetensors


def test_safetensors_round_trip_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5)).astype(np.float32)
    path = str(tmp_path / "t.safetensors")
    write_safetensors(path, {"f32": a, "f16": a, "bf16": a, "i64": np.arange(4, dtype=np.int64)},
                      dtypes={"f16": "F16", "bf16": "BF16"}, metadata={"format": "pt"})
    f = SafetensorsFile(path)
    assert sorted(f.keys()) == ["bf16", "f16", "f32", "i64"]
    assert f.metadata == {"format": "pt"}
    assert [f.dtype(k) for k in ("f32", "f16", "bf16")] == ["F32", "F16", "BF16"]
    np.testing.assert_array_equal(f.get("f32"), a)
    np.testing.assert_array_equal(f.get("f16"), a.astype(np.float16).astype(np.float32))
    assert f.get("bf16").dtype == np.float32 and f.shape("bf16") == (3, 5)
    np.testing.assert_allclose(f.get("bf16"), a, rtol=2 ** -8)
    np.testing.assert_array_equal(f.get("i64"), np.arange(4))


def test_bf16_bits():
    vals = np.array([1.0, -2.5, 0.0, 3.140625, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8], dtype=np.float32)
    bits = f32_to_bf16_bits(vals)
    # 1+2^-8 is a tie → stays at the even 0x3F80; 1+3*2^-8 is a tie above the odd 0x3F81 → 0x3F82.
    assert [hex(b) for b in bits] == ["0x3f80", "0xc020", "0x0", "0x4049", "0x3f80", "0x3f82"]
    np.testing.assert_array_equal(bf16_bits_to_f32(np.array([0x3F80, 0xC020, 0x4049], np.uint16)),
                                  np.array([1.0, -2.5, 3.140625], np.float32))


def test_safetensors_rejects_corrupt_files(tmp_path):
    path = str(tmp_path / "bad.safetensors")
    write_safetensors(path, {"x": np.ones((4, 4), np.float32)})
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-8])  # truncated data
    with pytest.raises(ValueError, match="offsets"):
        SafetensorsFile(path)
    open(path, "wb").write(b"\xff" * 8 + b"{}")  # header length beyond the file
    with pytest.raises(ValueError, match="header length"):
        SafetensorsFile(path)


# ---------------------------------------------------------------- prompt and stats


def test_digitize_edges():
    x = [-1.5, -1.0, -1.0 + 1e-9, 0.0, 1 - 2 / 256 - 1e-9, 1 - 2 / 256, 0.999, 1.0, 2.0, -1 + 2 / 256]
    assert oi.discretize_state(np.array(x)).tolist() == [-1, 0, 0, 128, 254, 255, 255, 255, 255, 1]


def test_pi05_prompt_text():
    text = oi.pi05_prompt_text("  pick_up\nthe cup ", np.array([-1.2, 0.0, 0.5]))
    assert text == "Task: pick up the cup, State: -1 128 192;\nAction: "


def test_tokenize_pads_and_truncates(reference_tiny_checkpoint):
    tok_path = os.path.join(reference_tiny_checkpoint, "paligemma_tokenizer.model")
    long_tok = oi.PaligemmaTokenizer(tok_path, 200)
    ids, mask, _ = long_tok.tokenize("pick up the cup", None)
    n = int(mask.sum())
    assert ids.shape == (200,) and mask[:n].all() and not mask[n:].any() and (ids[n:] == 0).all()
    assert ids[0] == long_tok._sp.bos_id()
    assert ids[:n].tolist() == long_tok.encode("pick up the cup", add_bos=True) + long_tok.encode("\n")
    state = np.linspace(-0.9, 0.9, 8)
    full, fmask, text = long_tok.tokenize("pick up the cup", state)
    assert text.startswith("Task: pick up the cup, State: ") and text.endswith(";\nAction: ")
    assert full[:int(fmask.sum())].tolist() == long_tok.encode(text, add_bos=True)
    short_tok = oi.PaligemmaTokenizer(tok_path, 12)
    cut, cmask, _ = short_tok.tokenize("pick up the cup", state)
    assert cmask.all() and cut.tolist() == full[:12].tolist()


def test_quantile_normalize_round_trip():
    st = {"q01": np.array([-1.0, 0.0, 2.0]), "q99": np.array([1.0, 4.0, 2.5]),
          "mean": np.zeros(3), "std": np.ones(3)}
    x = np.array([0.3, 1.0])  # a 2-D state against 3-D stats: stats cut to x's dims
    n = oi.normalize(x, st)
    np.testing.assert_allclose(n, [(0.3 + 1) / (2 + 1e-6) * 2 - 1, 1.0 / (4 + 1e-6) * 2 - 1])
    a = np.array([[-1.0, 1.0, 0.0, 0.7]])  # 4 dims, stats cover 3: the 4th passes through
    u = oi.unnormalize(a, st)
    np.testing.assert_allclose(u, [[-1.0, 4.0 + 1e-6, 2.0 + (2.5 - 2.0 + 1e-6) / 2, 0.7]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(oi.unnormalize(oi.normalize(x, st), {k: v[:2] for k, v in st.items()}), x)
    with pytest.raises(ValueError):
        oi.normalize(np.zeros(4), st)


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("shape", [(480, 640), (200, 300), (300, 200), (100, 100), (224, 224)])
def test_resize_with_pad_geometry_and_values(shape):
    rng = np.random.default_rng(shape[0])
    img = rng.integers(1, 256, size=(*shape, 3), dtype=np.uint8)  # never 0: padding is the only -1
    rh, rw, top, left = oi.resized_size(*shape, 224, 224)
    assert max(rh, rw) == 224 and abs(rh / rw - shape[0] / shape[1]) < 0.02
    # openpi puts the odd padding pixel at the bottom/right
    assert top == (224 - rh) // 2 and left == (224 - rw) // 2
    content = np.zeros((224, 224), bool)
    content[top:top + rh, left:left + rw] = True
    out = {m: oi.resize_with_pad(img, 224, 224, m) for m in ("torch_float", "torch_u8")}
    for m, o in out.items():
        assert o.shape == (224, 224, 3) and o.dtype == np.float32, m
        assert (o[~content] == -1.0).all(), f"{m}: padding must be -1"
        assert (o[content] > -1.0).all(), f"{m}: content must not be -1"
    # the float64 bilinear is F.interpolate's semantics (checked against torch in float64) ...
    unit = oi.u8_to_unit(img)
    t = torch.from_numpy(unit.astype(np.float64)).permute(2, 0, 1)[None]
    want = F.interpolate(t, size=(rh, rw), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    assert max_abs(out["torch_float"][content].reshape(rh, rw, 3), want)[0] < 1e-6
    # ... and torch's float32 kernel stays inside the "images_resized" parity bar
    t32 = F.interpolate(t.float(), size=(rh, rw), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    assert max_abs(out["torch_float"][content].reshape(rh, rw, 3), t32)[0] < 1e-4
    # uint8 rounding moves values by at most half a step
    assert max_abs(out["torch_u8"], out["torch_float"])[0] <= 1.0 / 255 + 1e-6
    if shape == (224, 224):
        for o in out.values():
            np.testing.assert_array_equal(o, unit)


def test_resize_pil_variant():
    pytest.importorskip("PIL")
    yy, xx = np.mgrid[0:200, 0:300]  # smooth content: antialiasing changes little
    img = np.stack([xx * 0.8 + 10, yy + 20, (xx + yy) * 0.4 + 5], axis=-1).astype(np.uint8)
    o = oi.resize_with_pad(img, 224, 224, "pil")
    rh, rw, top, left = oi.resized_size(200, 300, 224, 224)
    assert (o[:top] == -1).all() and (o[top + rh:] == -1).all() and (o[top:top + rh] > -1).all()
    assert max_abs(o, oi.resize_with_pad(img, 224, 224, "torch_float"))[0] < 0.05


def test_missing_view_is_all_minus_one():
    img, mask = oi.preprocess_image(None)
    assert not mask and img.shape == (224, 224, 3) and (img == -1.0).all()


# ---------------------------------------------------------------- model pieces


def test_make_att_2d_masks_prefix_lm():
    pad = torch.tensor([[True, True, True, True, True, False]])
    ar = torch.tensor([[0, 0, 0, 1, 1, 1]])
    m = pr.make_att_2d_masks(pad, ar)[0].int().tolist()
    assert m == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                 [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]


def test_time_embedding_formula():
    t = torch.tensor([0.7], dtype=torch.float32)
    emb = pr.sinusoidal_time_embedding(t, 8).numpy()[0]
    period = 4e-3 * (4.0 / 4e-3) ** np.linspace(0, 1, 4)
    ang = float(np.float32(0.7)) * 2 * math.pi / period
    np.testing.assert_allclose(emb, np.concatenate([np.sin(ang), np.cos(ang)]), rtol=1e-12, atol=1e-12)


def count_steps(ref, num_steps):
    calls = []
    real = ref.denoise_step

    def spy(*a, **k):  # denoise_step(prefix_pad, ks, vs, x_t, t, state=...)
        calls.append(float(a[4][0]))
        return real(*a, **k)

    ref.denoise_step = spy
    try:
        ref.prefix_pass = lambda e, p, a: ([torch.zeros(1, int(p.shape[0]), ref.llm["head_dim"])] * ref.llm["layers"],) * 2
        ref.predict([None], 1, "x", np.zeros(8), np.zeros((2, ref.action_dim), np.float32), num_steps=num_steps)
    finally:
        del ref.denoise_step, ref.prefix_pass
    return calls


@pytest.fixture(scope="module")
def ref(reference_tiny_checkpoint):
    r = pr.Pi05Reference(reference_tiny_checkpoint, max_token_len=48)
    assert r.vision["heads"] == 4 and r.llm["head_dim"] == 16 and r.expert["width"] == 32
    return r


@pytest.mark.parametrize("num_steps", [1, 3, 10, 20])
def test_euler_runs_num_steps_from_t1(ref, num_steps):
    times = count_steps(ref, num_steps)
    assert len(times) == num_steps and times[0] == 1.0


def test_tf32_is_off(ref):
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def _inputs(seed, sizes):
    rng = np.random.default_rng(seed)
    imgs = [None if s is None else rng.integers(1, 256, size=(*s, 3), dtype=np.uint8) for s in sizes]
    return imgs, rng.uniform(-0.5, 1.5, 8), rng.standard_normal((10, 32)).astype(np.float32)


def assert_same_valid_rows(a, b, what):
    for key in ("prefix_embeddings", "velocity_0", "actions_normalized", "actions"):
        ok, line = check_close(key, a[key], b[key], kind=key)
        assert ok, f"{what}: {line}"
    for i, (ka, kb) in enumerate(zip(a["prefix_k"] + a["prefix_v"], b["prefix_k"] + b["prefix_v"])):
        ok, line = check_close(f"prefix_kv.{i}", ka, kb, kind="prefix_k")
        assert ok, f"{what}: {line}"
    assert np.array_equal(a["prompt_ids"], b["prompt_ids"])


def test_padded_equals_compact(ref):
    """openpi's masked/padded prefix == dropping masked views and text padding (the engine's way)."""
    imgs, state, noise = _inputs(1, [(480, 640), None, (224, 224)])
    padded = ref.predict(imgs, 3, "put the cup on the plate", state, noise)
    compact = ref.predict(imgs, 3, "put the cup on the plate", state, noise, compact=True)
    assert padded["prefix_k"][0].shape[0] == 2 * 256 + len(padded["prompt_ids"])
    assert_same_valid_rows(padded, compact, "padded vs compact")
    assert np.abs(padded["velocity_0"]).mean() > 0.1 and np.isfinite(padded["actions"]).all()


def test_masked_slot_and_text_padding_change_nothing(reference_tiny_checkpoint):
    imgs, state, noise = _inputs(2, [(200, 300), (224, 224)])
    ref100 = pr.Pi05Reference(reference_tiny_checkpoint, max_token_len=100)
    two = ref100.predict(imgs, 2, "open the drawer", state, noise)
    assert int(two["prompt_ids"].shape[0]) < 100, "the prompt must fit for this test"
    three = ref100.predict([imgs[0], None, imgs[1]], 3, "open the drawer", state, noise)
    assert_same_valid_rows(two, three, "masked middle slot")
    longer = pr.Pi05Reference(reference_tiny_checkpoint, max_token_len=180).predict(
        imgs, 2, "open the drawer", state, noise)
    assert_same_valid_rows(two, longer, "text padding 100 vs 180")


def test_a_change_that_matters_is_seen(ref):
    """The invariance checks above can fail: a different state (different prompt) changes actions."""
    imgs, state, noise = _inputs(3, [(224, 224)])
    a = ref.predict(imgs, 1, "open the drawer", state, noise)["actions"]
    b = ref.predict(imgs, 1, "open the drawer", state + 0.5, noise)["actions"]
    assert max_abs(a, b)[0] > 1e-3


def test_unnormalize_covers_only_stat_dims(ref):
    imgs, state, noise = _inputs(4, [(224, 224)])
    out = ref.predict(imgs, 1, "stack the bowls", state, noise)
    st = ref.norm_stats["actions"]
    d = st["q01"].shape[0]
    np.testing.assert_array_equal(out["actions"][:, d:], out["actions_normalized"][:, d:])
    want = (out["actions_normalized"][:, :d].astype(np.float64) + 1) / 2 * (st["q99"] - st["q01"] + 1e-6) + st["q01"]
    np.testing.assert_allclose(out["actions"][:, :d], want, rtol=1e-6, atol=1e-6)


def test_float32_agrees_with_float64(ref, reference_tiny_checkpoint):
    imgs, state, noise = _inputs(5, [(480, 640), (224, 224)])
    f32 = ref.predict(imgs, 2, "pick up the red block", state, noise)
    f64 = pr.Pi05Reference(reference_tiny_checkpoint, dtype=torch.float64, max_token_len=48).predict(
        imgs, 2, "pick up the red block", state, noise)
    assert cos(f32["actions"], f64["actions"]) > 0.999999
    assert max_abs(f32["actions"], f64["actions"])[0] < 2e-5


# ---------------------------------------------------------------- pi0


@pytest.fixture(scope="module")
def pi0_ckpt(tmp_path_factory):
    from reference.tiny_checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(str(tmp_path_factory.mktemp("tiny_pi0_reference")), seed=1, config="pi0")


@pytest.fixture(scope="module")
def pi0(pi0_ckpt):
    r = Pi0Reference(pi0_ckpt)
    assert r.max_token_len == 48 and r.normalization == "zscore" and not r.discrete_state_input
    assert r.w("state_proj.weight").shape == (32, 32)
    assert r.w("action_time_mlp_in.weight").shape == (32, 64)
    return r


def _pi0_inputs(r, seed, sizes, horizon=10):
    rng = np.random.default_rng(seed)
    imgs = [None if s is None else rng.integers(1, 256, size=(*s, 3), dtype=np.uint8) for s in sizes]
    st = r.norm_stats["state"]
    state = st["mean"] + st["std"] * rng.uniform(-2.5, 2.5, st["mean"].shape)
    return imgs, state, rng.standard_normal((horizon, 32)).astype(np.float32)


def test_each_class_refuses_the_other_checkpoint(pi0_ckpt, reference_tiny_checkpoint):
    with pytest.raises(NotImplementedError, match="found pi0: use Pi0Reference"):
        pr.Pi05Reference(pi0_ckpt)
    with pytest.raises(NotImplementedError, match="found pi05: use Pi05Reference"):
        Pi0Reference(reference_tiny_checkpoint)


def test_suffix_masks_pi0_and_pi05(pi0, ref):
    """openpi's ar-masks, pi0: [1] (state) + [1, 0, ...] (actions): the state row sees the valid
    prefix and itself only; action rows see the valid prefix, the state and every action.
    pi05: [1, 0, ...]: every action row sees the valid prefix and every action."""
    h, t = 4, torch.tensor([0.3])
    suffix, att, cond = pi0.embed_suffix(torch.randn(1, 32), torch.randn(h, 32), t)
    assert suffix.shape == (1 + h, 32) and cond is None and att.tolist() == [1, 1, 0, 0, 0]
    prefix_pad = torch.tensor([True, False, True])
    m = pr.suffix_attention_mask(prefix_pad, att).int().tolist()
    assert m[0] == [1, 0, 1] + [1, 0, 0, 0, 0]
    assert all(row == [1, 0, 1] + [1] * (1 + h) for row in m[1:])
    suffix05, att05, cond05 = ref.embed_suffix(None, torch.randn(h, 32), t)
    assert suffix05.shape == (h, 32) and cond05.shape == (32,) and att05.tolist() == [1, 0, 0, 0]
    assert pr.suffix_attention_mask(prefix_pad, att05).int().tolist() == [[1, 0, 1] + [1] * h] * h


def _prefix(r, imgs, prompt, state):
    tokens, mask, _, norm_state = r.prepare_prompt(prompt, state)
    pre = [oi.preprocess_image(im) for im in imgs]
    embs = torch.cat([r.embed_image(i) for i, _ in pre] + [r.embed_tokens(tokens)])
    pad = torch.cat([torch.full((256,), m) for _, m in pre] + [torch.from_numpy(mask)])
    ks, vs = r.prefix_pass(embs, pad, torch.zeros(pad.shape[0], dtype=torch.int64))
    return pad, ks, vs, r.suffix_state(norm_state)


def test_pi0_state_token_never_sees_the_actions(pi0):
    imgs, state, noise = _pi0_inputs(pi0, 10, [(224, 224), None])
    pad, ks, vs, st = _prefix(pi0, imgs, "open the drawer", state)
    t = torch.tensor([0.6])
    with torch.no_grad():
        outs = []
        for x in (torch.from_numpy(noise), torch.from_numpy(noise) * -2.0 + 0.5):
            suffix, att, cond = pi0.embed_suffix(st, x, t)
            outs.append(pi0.expert_hidden(pad, ks, vs, suffix, att, cond))
        alone = pi0.expert_hidden(pad, ks, vs, suffix[:1], att[:1], cond)
    assert max_abs(outs[0][0], outs[1][0])[0] < 1e-6, "the state token's output depends on the actions"
    assert max_abs(outs[0][1:], outs[1][1:])[0] > 1e-2, "the actions must change the action rows"
    ok, line = check_close("state_alone", alone[0], outs[1][0], kind="velocity_0")
    assert ok, line
    assert np.abs(outs[0][0].numpy()).mean() > 0.1


def test_pi0_padded_equals_compact(pi0):
    imgs, state, noise = _pi0_inputs(pi0, 11, [(480, 640), None, (224, 224)])
    padded = pi0.predict(imgs, 3, "put the cup on the plate", state, noise)
    compact = pi0.predict(imgs, 3, "put the cup on the plate", state, noise, compact=True)
    assert padded["prefix_k"][0].shape[0] == 2 * 256 + len(padded["prompt_ids"]) < 2 * 256 + 48
    assert_same_valid_rows(padded, compact, "pi0 padded vs compact")
    assert np.abs(padded["velocity_0"]).mean() > 0.1 and np.isfinite(padded["actions"]).all()


def test_pi0_masked_slot_and_text_padding_change_nothing(pi0, pi0_ckpt):
    imgs, state, noise = _pi0_inputs(pi0, 12, [(200, 300), (224, 224)])
    two = pi0.predict(imgs, 2, "stack the bowls", state, noise)
    three = pi0.predict([imgs[0], None, imgs[1]], 3, "stack the bowls", state, noise)
    assert_same_valid_rows(two, three, "pi0 masked middle slot")
    longer = Pi0Reference(pi0_ckpt, max_token_len=120).predict(imgs, 2, "stack the bowls", state, noise)
    assert_same_valid_rows(two, longer, "pi0 text padding 48 vs 120")


def test_pi0_prompt_format_and_truncation(pi0):
    imgs, state, noise = _pi0_inputs(pi0, 13, [(224, 224)], horizon=2)
    out = pi0.predict(imgs, 1, "  pick_up the\nred block ", state, noise, num_steps=1)
    tok = pi0.tokenizer
    assert out["prompt_text"] == "pick up the red block\n"
    assert out["prompt_ids"].tolist() == tok.encode("pick up the red block", add_bos=True) + tok.encode("\n")
    long_prompt = " ".join(["pick up the red block and put it in the bowl"] * 6)
    ids, mask, _ = tok.tokenize(long_prompt, None)
    full = tok.encode(long_prompt, add_bos=True) + tok.encode("\n")
    assert len(full) > 48 and mask.all() and ids.tolist() == full[:48]


def test_pi0_state_zscore_and_padding(pi0):
    imgs, state, noise = _pi0_inputs(pi0, 14, [(224, 224)], horizon=3)
    out = pi0.predict(imgs, 1, "push the button", state, noise, num_steps=2)
    st = pi0.norm_stats["state"]
    want = (state - st["mean"]) / (st["std"] + 1e-6)
    np.testing.assert_allclose(out["state_normalized"], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out["state_input"][8:], np.zeros(24, np.float32))
    np.testing.assert_allclose(out["state_input"][:8], want.astype(np.float32), rtol=0, atol=0)
    with pytest.raises(ValueError, match="state is required"):
        pi0.predict(imgs, 1, "push the button", None, noise)
    moved = pi0.predict(imgs, 1, "push the button", state + 0.3 * st["std"], noise, num_steps=2)
    assert max_abs(out["actions"], moved["actions"])[0] > 1e-3, "the state must reach the actions"


def test_pi0_zscore_unnormalize(pi0):
    imgs, state, noise = _pi0_inputs(pi0, 15, [(224, 224)])
    out = pi0.predict(imgs, 1, "close the microwave", state, noise)
    st = pi0.norm_stats["actions"]
    d = st["mean"].shape[0]
    a = out["actions_normalized"].astype(np.float64)
    np.testing.assert_allclose(out["actions"][:, :d], a[:, :d] * (st["std"] + 1e-6) + st["mean"], rtol=1e-6, atol=1e-6)
    # openpi pads mean with 0 and std with 1: the uncovered dims get x * (1 + 1e-6)
    np.testing.assert_allclose(out["actions"][:, d:], a[:, d:] * (1 + 1e-6), rtol=1e-7, atol=0)


@pytest.mark.parametrize("num_steps", [1, 4])
def test_pi0_euler_runs_num_steps_from_t1(pi0, num_steps):
    times = count_steps(pi0, num_steps)
    assert len(times) == num_steps and times[0] == 1.0


def test_pi0_float32_agrees_with_float64(pi0, pi0_ckpt):
    imgs, state, noise = _pi0_inputs(pi0, 16, [(480, 640), (224, 224)])
    f32 = pi0.predict(imgs, 2, "turn on the stove", state, noise)
    f64 = Pi0Reference(pi0_ckpt, dtype=torch.float64).predict(imgs, 2, "turn on the stove", state, noise)
    assert cos(f32["actions"], f64["actions"]) > 0.999999
    assert max_abs(f32["actions"], f64["actions"])[0] < 2e-5
