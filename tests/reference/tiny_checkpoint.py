"""A random tiny Pi0.5 or Pi0 checkpoint in openpi's PyTorch export layout, written in python so
the reference can be tested before (and without) the engine: model.safetensors (bf16, as openpi's
converter), config.json (with "flashrt": {"vision_heads"}), assets/<id>/norm_stats.json (mean,
std, q01, q99) and a small SentencePiece model trained here as paligemma_tokenizer.model.
pi05: adaRMS expert norms (`*.dense.{weight,bias}`), time_mlp_in/out. pi0: plain expert norms
(`*.weight`), state_proj (W x 32), action_time_mlp_in (W x 2W), action_time_mlp_out (W x W).
Dims (same as the engine's tiny preset): SigLIP width 64, 2 layers, 4 heads, MLP 128, patch 14,
image 224; LLM width 64, 2 layers, 8 heads, 1 KV head, head_dim 16, MLP 128; expert width 32,
2 layers, 8 heads, 1 KV head, head_dim 16, MLP 64; vocab 1024; action_dim 32.
Tests: tests/python/test_reference_selfcheck.py (it is their checkpoint).
"""

import io
import json
import os

import numpy as np

from .pi0_family_reference import EXPERT, LLM, PREFIX, VISION
from .safetensors_np import write_safetensors

TINY = dict(vision=dict(width=64, layers=2, heads=4, mlp=128, patch=14, image=224),
            llm=dict(width=64, layers=2, heads=8, head_dim=16, mlp=128),
            expert=dict(width=32, layers=2, heads=8, head_dim=16, mlp=64),
            vocab=1024, action_dim=32, state_dim=8, action_stats_dim=7)


def weight_shapes(d=TINY, config="pi05"):
    """{checkpoint key: shape} of a pi05 or pi0 checkpoint with dims d."""
    if config not in ("pi05", "pi0"):
        raise ValueError(f"weight_shapes: config {config!r}; expected 'pi05' or 'pi0'")
    v, s = d["vision"], {}
    n_patch = (v["image"] // v["patch"]) ** 2
    s[VISION + "embeddings.patch_embedding.weight"] = (v["width"], 3, v["patch"], v["patch"])
    s[VISION + "embeddings.patch_embedding.bias"] = (v["width"],)
    s[VISION + "embeddings.position_embedding.weight"] = (n_patch, v["width"])
    for i in range(v["layers"]):
        p = f"{VISION}encoder.layers.{i}."
        for ln in ("layer_norm1", "layer_norm2"):
            s[p + ln + ".weight"] = s[p + ln + ".bias"] = (v["width"],)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"] = (v["width"], v["width"])
            s[p + f"self_attn.{proj}.bias"] = (v["width"],)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = (v["mlp"], v["width"]), (v["mlp"],)
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = (v["width"], v["mlp"]), (v["width"],)
    s[VISION + "post_layernorm.weight"] = s[VISION + "post_layernorm.bias"] = (v["width"],)
    mp = PREFIX + "paligemma.model.multi_modal_projector.linear."
    s[mp + "weight"], s[mp + "bias"] = (d["llm"]["width"], v["width"]), (d["llm"]["width"],)
    s[PREFIX + "paligemma.lm_head.weight"] = (d["vocab"], d["llm"]["width"])
    for base, g, ada in ((LLM, d["llm"], False), (EXPERT, d["expert"], config == "pi05")):
        w, hd = g["width"], g["head_dim"]
        for i in range(g["layers"]):
            p = f"{base}layers.{i}."
            s[p + "self_attn.q_proj.weight"] = (g["heads"] * hd, w)
            s[p + "self_attn.k_proj.weight"] = s[p + "self_attn.v_proj.weight"] = (hd, w)
            s[p + "self_attn.o_proj.weight"] = (w, g["heads"] * hd)
            s[p + "mlp.gate_proj.weight"] = s[p + "mlp.up_proj.weight"] = (g["mlp"], w)
            s[p + "mlp.down_proj.weight"] = (w, g["mlp"])
            for n in ("input_layernorm", "post_attention_layernorm"):
                if ada:
                    s[p + n + ".dense.weight"], s[p + n + ".dense.bias"] = (3 * w, w), (3 * w,)
                else:
                    s[p + n + ".weight"] = (w,)
        if ada:
            s[base + "norm.dense.weight"], s[base + "norm.dense.bias"] = (3 * w, w), (3 * w,)
        else:
            s[base + "norm.weight"] = (w,)
    ew, a = d["expert"]["width"], d["action_dim"]
    heads = [("action_in_proj", (ew, a)), ("action_out_proj", (a, ew))]
    if config == "pi05":
        heads += [("time_mlp_in", (ew, ew)), ("time_mlp_out", (ew, ew))]
    else:
        heads += [("state_proj", (ew, a)), ("action_time_mlp_in", (ew, 2 * ew)), ("action_time_mlp_out", (ew, ew))]
    for name, (o, i) in heads:
        s[name + ".weight"], s[name + ".bias"] = (o, i), (o,)
    return s


def _init(name, shape, rng):
    """Scales that keep activations O(1), like a trained network (and non-trivial gates)."""
    is_bias = name.endswith(".bias")
    if "layer_norm" in name or "post_layernorm" in name:  # SigLIP LayerNorm
        return 0.02 * rng.standard_normal(shape) if is_bias else 1.0 + 0.05 * rng.standard_normal(shape)
    if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
        return 0.1 * rng.standard_normal(shape)  # Gemma stores w of (1 + w)
    if is_bias or "position_embedding" in name or "lm_head" in name:
        return (0.1 if "dense" in name else 0.02) * rng.standard_normal(shape)
    fan_in = int(np.prod(shape[1:]))
    return rng.standard_normal(shape) / np.sqrt(fan_in)


_WORDS = ("pick up the red block and place it in the bowl put the cup on the plate open the top drawer "
          "close the microwave turn on the stove push the button move the mug to the left right side "
          "of the table stack green blue yellow bowls Task State Action robot arm gripper").split()


def train_tokenizer(path, vocab_size, seed=0):
    import sentencepiece as spm

    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(3000):
        words = " ".join(rng.choice(_WORDS, size=rng.integers(3, 12)))
        bins = " ".join(str(b) for b in rng.integers(-1, 256, size=8))
        lines.append(f"Task: {words}, State: {bins};\nAction: ")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size,
                                   model_type="unigram", character_coverage=1.0, byte_fallback=True,
                                   hard_vocab_limit=False, split_digits=True, remove_extra_whitespaces=False,
                                   num_threads=1, minloglevel=2)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def _stats(rng, dim):
    mean = 0.3 * rng.standard_normal(dim)
    std = 0.2 + 0.4 * np.abs(rng.standard_normal(dim))
    return {"mean": mean.tolist(), "std": std.tolist(), "q01": (mean - 2.3 * std).tolist(),
            "q99": (mean + 2.3 * std).tolist()}


def make_tiny_checkpoint(out_dir, seed=0, asset_id="synthetic_robot", dtype="BF16", config="pi05"):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_dir, "assets", asset_id), exist_ok=True)
    shapes = weight_shapes(TINY, config)
    tensors = {n: _init(n, shp, rng).astype(np.float32) for n, shp in shapes.items()}
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors,
                      dtypes={n: dtype for n in tensors}, metadata={"format": "pt"})
    cfg = {"action_dim": TINY["action_dim"], "pi05": config == "pi05",
           "flashrt": {"vision_heads": TINY["vision"]["heads"], "note": "python tiny checkpoint"}}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    stats = {"norm_stats": {"state": _stats(rng, TINY["state_dim"]), "actions": _stats(rng, TINY["action_stats_dim"])}}
    with open(os.path.join(out_dir, "assets", asset_id, "norm_stats.json"), "w") as f:
        json.dump(stats, f, indent=2)
    train_tokenizer(os.path.join(out_dir, "paligemma_tokenizer.model"), 300, seed)
    return out_dir
