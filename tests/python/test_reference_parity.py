"""Parity of the FlashRT engine (fp32 CPU backend) with the independent PyTorch reference of
Pi0.5 (tests/reference/pi05_reference.py, openpi's formulation), on the synthetic tiny pi05
checkpoint, fixed noise, 10 Euler steps, horizon 10.

Each case compares, in pipeline order, prompt_ids (exact), the preprocessed images, the vision
tokens, the prefix embeddings, every layer's prefix K and V, the first velocity, the normalized
and the final actions, so a failure names the first stage that disagrees and lists them all.
Pass bar on the actions: cosine >= 0.99999 and max abs error <= 1e-4 (TOLERANCES in
tests/reference/__init__.py holds every bar). Each case adds one line to the "FlashRT parity
vs PyTorch reference" section printed at the end of the pytest run.
Skipped (with the reason) when flash_rt or its library is missing, unless
FLASHRT_REQUIRE_ENGINE=1.  Run: /usr/bin/python3 -m pytest tests/python/test_reference_parity.py -q
"""

import dataclasses

import numpy as np
import pytest

from reference import check_close, cos, max_abs
from reference.pi05_reference import Pi05Reference

HORIZON = 10
NUM_STEPS = 10
# openpi's model path for a non-224 image (see resize_with_pad in tests/reference/openpi_inputs.py).
IMAGE_RESIZE = "torch_float"

SHORT = "  pick_up the red block\nand put it in the bowl "
MEDIUM = ("open the top drawer of the cabinet, take out the yellow sponge, wipe the table from the left "
          "side to the right side twice, then put the sponge back into the drawer and close it")
LONG = f"{MEDIUM}; then {MEDIUM}"  # > 48 tokens with any tokenizer, so max_token_len=48 truncates it


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    sizes: tuple  # one (height, width) per view slot; None = a missing (masked) view
    prompt: str
    with_state: bool  # True: pi05 discrete state in the prompt; False: plain prompt, no state
    max_token_len: int = 200
    truncated: bool = False  # the case is meant to exceed max_token_len

    @property
    def num_views(self):
        return len(self.sizes)


CASES = [
    Case("1view_224_state", ((224, 224),), SHORT, True),
    Case("1view_480x640_nostate", ((480, 640),), SHORT, False),
    Case("2views_resize_state", ((480, 640), (200, 300)), SHORT, True),
    Case("2views_slot1_masked", ((224, 224), None), SHORT, True),
    Case("3views_mixed_state", ((224, 224), (480, 640), (200, 300)), SHORT, True),
    Case("3views_slot1_masked", ((200, 300), None, (480, 640)), SHORT, True),
    Case("2views_long_truncated_state", ((224, 224), (200, 300)), LONG, True, 48, truncated=True),
    Case("3views_long_truncated_nostate", ((480, 640), (224, 224), None), LONG, False, 48, truncated=True),
    Case("2views_medium_nostate", ((224, 224), (480, 640)), MEDIUM, False, 200),
]


@pytest.fixture(scope="session")
def engine_models(flash_rt_engine, tiny_pi05_checkpoint):
    cache = {}

    def get(num_views, max_token_len, discrete_state_input):
        key = (num_views, max_token_len, discrete_state_input)
        if key not in cache:
            m = flash_rt_engine.load_model(
                tiny_pi05_checkpoint, config="pi05", num_views=num_views, num_steps=NUM_STEPS,
                hardware="cpu", action_horizon=HORIZON, max_token_len=max_token_len,
                discrete_state_input=discrete_state_input)
            m.enable_dumps(True)
            cache[key] = m
        return cache[key]

    return get


@pytest.fixture(scope="session")
def references(tiny_pi05_checkpoint):
    cache = {}

    def get(max_token_len, discrete_state_input):
        key = (max_token_len, discrete_state_input)
        if key not in cache:
            cache[key] = Pi05Reference(tiny_pi05_checkpoint, max_token_len=max_token_len,
                                       discrete_state_input=discrete_state_input, image_resize=IMAGE_RESIZE)
        return cache[key]

    return get


def make_inputs(case, ref, seed):
    rng = np.random.default_rng(seed)
    images = [None if s is None else rng.integers(1, 256, size=(s[0], s[1], 3), dtype=np.uint8)
              for s in case.sizes]
    state = None
    if case.with_state:  # raw robot units spread over and a bit beyond [q01, q99]
        st = ref.norm_stats["state"]
        u = rng.uniform(-0.1, 1.1, size=st["q01"].shape)
        state = (st["q01"] + u * (st["q99"] - st["q01"])).astype(np.float32)
    noise = rng.standard_normal((HORIZON, ref.action_dim)).astype(np.float32)
    return images, state, noise


def image_hint(got, want):
    d = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)) * 255.0 / 2.0  # in uint8 steps
    n = int(np.count_nonzero(d > 1e-4))
    if n and d.max() <= 0.52:  # half a step, plus the float error of the bilinear itself
        return (f"  hint: {n} values differ by at most half a uint8 step: the engine looks like it "
                "rounds the resized image to uint8 (resize_with_pad_torch's uint8 branch); openpi's "
                "model resizes the [-1, 1] float image without rounding (openpi_inputs.resize_with_pad)")
    if n and np.allclose(d[d > 1e-4], 1.0, atol=1e-3):
        return f"  hint: {n} values differ by exactly one uint8 step: rounding ties after the bilinear resize"
    return ""


def compare_case(engine, ref_out, engine_actions):
    """→ list of (ok, line) in pipeline order."""
    results = []

    def dump(name):
        try:
            return engine.get_dump(name), None
        except Exception as e:  # noqa: BLE001 - reported as a mismatch line
            return None, f"{name}  engine has no dump: {type(e).__name__}: {e}"

    ids, err = dump("prompt_ids")
    if err:
        results.append((False, err))
    else:
        got = np.asarray(ids).astype(np.int64).ravel()
        want = ref_out["prompt_ids"]
        ok = got.shape == want.shape and np.array_equal(got, want)
        results.append((ok, f"prompt_ids  engine {got.tolist()} vs reference {want.tolist()}" if not ok
                        else f"prompt_ids  {len(want)} ids equal"))
    valid = [s for s, m in enumerate(ref_out["image_masks"]) if m]
    for stage, ref_key in (("image", "images"), ("vision_tokens", "vision_tokens")):
        for s in valid:
            got, err = dump(f"{stage}.{s}")
            if err:
                results.append((False, err))
                continue
            want, got = ref_out[ref_key][s], np.asarray(got)
            if got.size == want.size:  # e.g. the engine dumps an image as [224*224, 3]
                got = got.reshape(want.shape)
            kind = ref_key
            if stage == "image" and tuple(ref_out["input_sizes"][s]) != want.shape[:2]:
                kind = "images_resized"
            ok, line = check_close(f"{stage}.{s}", got, want, kind=kind)
            if not ok and stage == "image" and got.shape == want.shape:
                line += image_hint(got, want)
            results.append((ok, line))
    staged = [("prefix_embeddings", ref_out["prefix_embeddings"], "prefix_embeddings")]
    for i, (k, v) in enumerate(zip(ref_out["prefix_k"], ref_out["prefix_v"])):
        staged += [(f"prefix_k.{i}", k, "prefix_k"), (f"prefix_v.{i}", v, "prefix_v")]
    staged += [("velocity.0", ref_out["velocity_0"], "velocity_0"),
               ("actions_normalized", ref_out["actions_normalized"], "actions_normalized")]
    for name, want, kind in staged:
        got, err = dump(name)
        results.append((False, err) if err else check_close(name, got, want, kind=kind))
    results.append(check_close("actions", engine_actions, ref_out["actions"]))
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine_matches_reference(case, engine_models, references, parity_log):
    ref = references(case.max_token_len, case.with_state)
    images, state, noise = make_inputs(case, ref, seed=1000 + CASES.index(case))
    ref_out = ref.predict(images, case.num_views, case.prompt, state, noise, num_steps=NUM_STEPS)
    n_ids = len(ref_out["prompt_ids"])
    assert (n_ids == case.max_token_len) == case.truncated, (
        f"test setup: {n_ids} prompt tokens with max_token_len={case.max_token_len}; the case "
        f"expects truncated={case.truncated} (adjust the prompt for this tokenizer)")

    engine = engine_models(case.num_views, case.max_token_len, case.with_state)
    actions = np.asarray(engine.predict(images, prompt=case.prompt, state=state, noise=noise))
    assert actions.shape == (HORIZON, ref.action_dim), f"engine actions shape {actions.shape}"

    results = compare_case(engine, ref_out, actions)
    failed = [line for ok, line in results if not ok]
    c, (m, _) = cos(actions, ref_out["actions"]), max_abs(actions, ref_out["actions"])
    summary = (f"{case.name:32s} views={case.num_views} prompt_tokens={len(ref_out['prompt_ids']):3d}  "
               f"actions cos={c:.9f} max_abs={m:.2e}  "
               + ("PASS" if not failed else f"FAIL (first mismatch: {failed[0].split()[0]})"))
    parity_log(summary)
    print(summary)
    if failed:
        pytest.fail(f"{case.name}: first mismatch at {failed[0].split()[0]}\n  "
                    + "\n  ".join(line for _, line in results), pytrace=False)
