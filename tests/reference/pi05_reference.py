"""Independent PyTorch reference of Pi0.5 inference, following openpi's PyTorch model literally
(Physical-Intelligence/openpi: models_pytorch/pi0_pytorch.py sample_actions / embed_prefix /
embed_suffix / denoise_step / make_att_2d_masks / create_sinusoidal_pos_embedding,
gemma_pytorch.py, and the transformers_replace Gemma / SigLIP / PaliGemma files). Own code, only
torch.nn.functional ops, no transformers.

Literal means: the full padded prefix (every view slot, masked ones included, and the text
padded to max_token_len), 2-D boolean masks from cumulative ar-masks AND pad masks turned into
an additive -2.3819763e38, position ids cumsum(pad) - 1, a prefix pass that keeps each layer's
K (after RoPE) and V, then the Euler loop from t = 1 with dt = -1/num_steps while t >= -dt/2,
each step running the expert over [prefix KV ; suffix] with openpi's suffix masks.
Numerics: float32 by default (float64 allowed), weights widened from the file's bf16/f16;
text embeddings x float32(sqrt(width)) (openpi: `lang_emb * math.sqrt(dim)`, an fp32 multiply);
image features NOT divided by sqrt(width) (openpi removes it); RMSNorm x*rsqrt(mean(x^2)+1e-6)
*(1+w); adaRMS: dense(cond) chunked as (scale, shift, gate), x_n*(1+scale)+shift, residual
x + y*gate; GELU tanh; LayerNorm eps 1e-6; time embedding in float64 then cast to float32.
TF32 is OFF (openpi turns it on with set_float32_matmul_precision("high")); no torch.compile.
Runs on torch 1.13 (CPU) and torch 2.x (CPU/CUDA).
Tests: tests/python/test_reference_selfcheck.py, tests/python/test_reference_parity.py.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from . import openpi_inputs as oi
from .safetensors_np import SafetensorsFile, bf16_bits_to_f32

PREFIX = "paligemma_with_expert."
VISION = PREFIX + "paligemma.model.vision_tower.vision_model."
LLM = PREFIX + "paligemma.model.language_model."
EXPERT = PREFIX + "gemma_expert.model."
MASK_VALUE = -2.3819763e38  # openpi's _prepare_attention_masks_4d
RMS_EPS = 1e-6
LN_EPS = 1e-6
ROPE_THETA = 10000.0
SIGLIP_HEAD_DIM = 72  # So400m: 1152 / 16


def _disable_tf32():
    # Full fp32 matmuls/convs on GPU (openpi itself runs TF32; a parity reference must not).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")


def make_att_2d_masks(pad_masks, att_masks):
    """big_vision / openpi: token i sees token j iff cumsum(ar)[j] <= cumsum(ar)[i], both valid.
    pad_masks bool [B, N], att_masks int/bool [B, N] → bool [B, N, N]."""
    cumsum = torch.cumsum(att_masks.to(torch.int64), dim=1)
    att_2d = cumsum[:, None, :] <= cumsum[:, :, None]
    pad_2d = pad_masks[:, None, :] & pad_masks[:, :, None]
    return att_2d & pad_2d


def sinusoidal_time_embedding(t, dim, min_period=4e-3, max_period=4.0):
    """openpi create_sinusoidal_pos_embedding: float64 math, t is a float32 [B] tensor."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    scaling = 1.0 / period * 2 * math.pi
    x = scaling[None, :] * t[:, None]  # float32 t is promoted to float64 here, as in openpi
    return torch.cat([torch.sin(x), torch.cos(x)], dim=1)


def rms_norm(x, w):
    var = torch.mean(x * x, dim=-1, keepdim=True)
    return x * torch.rsqrt(var + RMS_EPS) * (1.0 + w)


def ada_rms_norm(x, dense_w, dense_b, cond):
    """→ (normed, gate). modulation = dense(cond) chunked in the order scale, shift, gate."""
    scale, shift, gate = torch.chunk(F.linear(cond, dense_w, dense_b), 3, dim=-1)
    var = torch.mean(x * x, dim=-1, keepdim=True)
    return x * torch.rsqrt(var + RMS_EPS) * (1 + scale) + shift, gate


def rope_cos_sin(pos, head_dim, dtype):
    """HF Gemma rotary embedding (default rope): cos/sin [N, head_dim] of positions `pos`."""
    inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=pos.device)
                                     .to(dtype) / head_dim))
    freqs = pos.to(dtype)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    """x [H, N, D] rotate-half RoPE."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def attention(q, k, v, mask, scale):
    """Eager attention as HF: q [Hq, Nq, D], k/v [Hkv, Nk, D], mask bool [Nq, Nk] or None.
    Masked logits get MASK_VALUE added (a fully masked row becomes uniform, as in openpi)."""
    rep = q.shape[0] // k.shape[0]
    if rep > 1:
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
        bias.masked_fill_(~mask, MASK_VALUE)
        scores = scores + bias[None]
    p = F.softmax(scores, dim=-1)
    out = torch.matmul(p, v)  # [Hq, Nq, D]
    return out.transpose(0, 1).reshape(q.shape[1], -1)


def _count_layers(ckpt, base, probe):
    n = 0
    while f"{base}layers.{n}.{probe}" in ckpt:
        n += 1
    return n


class Pi05Reference:
    def __init__(self, checkpoint_dir, device="cpu", dtype=torch.float32, max_token_len=200,
                 discrete_state_input=True, normalization="quantile", asset_id=None,
                 tokenizer_path=None, image_resize="torch_float"):
        _disable_tf32()
        self.dir = str(checkpoint_dir)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_token_len = int(max_token_len)
        self.discrete_state_input = bool(discrete_state_input)
        self.normalization = normalization
        self.image_resize = image_resize
        self.ckpt = SafetensorsFile(os.path.join(self.dir, "model.safetensors"))
        self._weights = {}
        cfg_path = os.path.join(self.dir, "config.json")
        self.config = {}
        if os.path.isfile(cfg_path):
            with open(cfg_path) as f:
                self.config = json.load(f)
        if "time_mlp_in.weight" not in self.ckpt:
            raise NotImplementedError(f"{self.dir}: not a pi05 checkpoint (no time_mlp_in.weight)")
        self._derive_dims()
        self.norm_stats = oi.load_norm_stats(oi.find_norm_stats(self.dir, asset_id))
        self.tokenizer = oi.PaligemmaTokenizer(
            tokenizer_path or os.path.join(self.dir, "paligemma_tokenizer.model"), self.max_token_len)
        self.embed_key = PREFIX + "paligemma.lm_head.weight"
        if self.embed_key not in self.ckpt:
            self.embed_key = LLM + "embed_tokens.weight"

    # ------------------------------------------------------------ weights and dims

    def w(self, name):
        """A weight on the device in the compute dtype (widened once, then cached)."""
        t = self._weights.get(name)
        if t is None:
            t = torch.from_numpy(self.ckpt.get(name)).to(device=self.device, dtype=self.dtype)
            self._weights[name] = t
        return t

    def _gemma_dims(self, base):
        q = self.ckpt.shape(base + "layers.0.self_attn.q_proj.weight")
        k = self.ckpt.shape(base + "layers.0.self_attn.k_proj.weight")
        head_dim = k[0]  # one KV head (Gemma 2B and 300M)
        if q[0] % head_dim:
            raise ValueError(f"{base}: q_proj rows {q[0]} not a multiple of head_dim {head_dim}")
        return dict(width=q[1], heads=q[0] // head_dim, kv_heads=1, head_dim=head_dim,
                    mlp=self.ckpt.shape(base + "layers.0.mlp.gate_proj.weight")[0],
                    layers=_count_layers(self.ckpt, base, "self_attn.q_proj.weight"))

    def _derive_dims(self):
        pw = self.ckpt.shape(VISION + "embeddings.patch_embedding.weight")
        npatch = self.ckpt.shape(VISION + "embeddings.position_embedding.weight")[0]
        width = pw[0]
        heads = (self.config.get("flashrt") or {}).get("vision_heads") or width // SIGLIP_HEAD_DIM
        self.vision = dict(width=width, patch=pw[2], image=int(round(math.sqrt(npatch))) * pw[2],
                           tokens=npatch, heads=int(heads), head_dim=width // int(heads),
                           layers=_count_layers(self.ckpt, VISION + "encoder.", "layer_norm1.weight"))
        self.llm = self._gemma_dims(LLM)
        self.expert = self._gemma_dims(EXPERT)
        self.action_dim = self.ckpt.shape("action_in_proj.weight")[1]
        if self.llm["layers"] != self.expert["layers"]:
            raise ValueError("llm and expert layer counts differ: the expert reads the LLM's KV per layer")

    # ------------------------------------------------------------ blocks

    def embed_image(self, img):
        """SigLIP + projector: img float32 [224, 224, 3] in [-1, 1] → [256, llm width]."""
        v, p = self.vision, VISION
        x = torch.from_numpy(np.ascontiguousarray(img)).to(self.device, self.dtype).permute(2, 0, 1)[None]
        x = F.conv2d(x, self.w(p + "embeddings.patch_embedding.weight"),
                     self.w(p + "embeddings.patch_embedding.bias"), stride=v["patch"])
        x = x.flatten(2).transpose(1, 2)[0] + self.w(p + "embeddings.position_embedding.weight")
        n, hd = x.shape[0], v["head_dim"]
        for i in range(v["layers"]):
            lp = f"{p}encoder.layers.{i}."
            lin = lambda t, name: F.linear(t, self.w(lp + name + ".weight"), self.w(lp + name + ".bias"))
            h = F.layer_norm(x, (v["width"],), self.w(lp + "layer_norm1.weight"),
                             self.w(lp + "layer_norm1.bias"), eps=LN_EPS)
            q, k, vv = (lin(h, f"self_attn.{s}_proj").view(n, v["heads"], hd).transpose(0, 1)
                        for s in ("q", "k", "v"))
            x = x + lin(attention(q, k, vv, None, hd ** -0.5), "self_attn.out_proj")
            h = F.layer_norm(x, (v["width"],), self.w(lp + "layer_norm2.weight"),
                             self.w(lp + "layer_norm2.bias"), eps=LN_EPS)
            x = x + lin(F.gelu(lin(h, "mlp.fc1"), approximate="tanh"), "mlp.fc2")
        x = F.layer_norm(x, (v["width"],), self.w(p + "post_layernorm.weight"),
                         self.w(p + "post_layernorm.bias"), eps=LN_EPS)
        mp = PREFIX + "paligemma.model.multi_modal_projector.linear."
        return F.linear(x, self.w(mp + "weight"), self.w(mp + "bias"))  # no 1/sqrt(width) (openpi)

    def embed_tokens(self, ids):
        rows = self.ckpt.raw(self.embed_key)[np.asarray(ids, dtype=np.int64)]
        if self.ckpt.dtype(self.embed_key) == "BF16":
            rows = bf16_bits_to_f32(rows)
        e = torch.from_numpy(np.asarray(rows, dtype=np.float32)).to(self.device, self.dtype)
        return e * torch.tensor(math.sqrt(e.shape[-1]), dtype=self.dtype)

    def _qkv(self, lp, h, g, pos):
        n = h.shape[0]
        q = F.linear(h, self.w(lp + "self_attn.q_proj.weight")).view(n, g["heads"], g["head_dim"]).transpose(0, 1)
        k = F.linear(h, self.w(lp + "self_attn.k_proj.weight")).view(n, g["kv_heads"], g["head_dim"]).transpose(0, 1)
        v = F.linear(h, self.w(lp + "self_attn.v_proj.weight")).view(n, g["kv_heads"], g["head_dim"]).transpose(0, 1)
        cos, sin = rope_cos_sin(pos, g["head_dim"], self.dtype)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def _mlp(self, lp, h):
        gate = F.linear(h, self.w(lp + "mlp.gate_proj.weight"))
        up = F.linear(h, self.w(lp + "mlp.up_proj.weight"))
        return F.linear(F.gelu(gate, approximate="tanh") * up, self.w(lp + "mlp.down_proj.weight"))

    def prefix_pass(self, embs, pad, att):
        """PaliGemma LM over the prefix → per layer (K after RoPE, V), each [kv, N, head_dim]."""
        g = self.llm
        att_2d = make_att_2d_masks(pad[None], att[None])[0]
        pos = torch.cumsum(pad.to(torch.int64), dim=0) - 1
        x, ks, vs = embs, [], []
        for i in range(g["layers"]):
            lp = f"{LLM}layers.{i}."
            q, k, v = self._qkv(lp, rms_norm(x, self.w(lp + "input_layernorm.weight")), g, pos)
            ks.append(k)
            vs.append(v)
            x = x + F.linear(attention(q, k, v, att_2d, g["head_dim"] ** -0.5), self.w(lp + "self_attn.o_proj.weight"))
            x = x + self._mlp(lp, rms_norm(x, self.w(lp + "post_attention_layernorm.weight")))
        return ks, vs

    def denoise_step(self, prefix_pad, ks, vs, x_t, t):
        """One velocity: the expert over [prefix KV ; action tokens] at time t (float32 [1])."""
        g, horizon = self.expert, x_t.shape[0]
        temb = sinusoidal_time_embedding(t, self.w("action_in_proj.weight").shape[0]).to(t.dtype).to(self.dtype)
        cond = F.silu(F.linear(temb, self.w("time_mlp_in.weight"), self.w("time_mlp_in.bias")))
        cond = F.silu(F.linear(cond, self.w("time_mlp_out.weight"), self.w("time_mlp_out.bias")))[0]
        x = F.linear(x_t, self.w("action_in_proj.weight"), self.w("action_in_proj.bias"))
        suffix_pad = torch.ones(horizon, dtype=torch.bool, device=self.device)
        suffix_att = torch.tensor([1] + [0] * (horizon - 1), dtype=torch.int64, device=self.device)
        mask = torch.cat([prefix_pad[None, :].expand(horizon, prefix_pad.shape[0]),
                          make_att_2d_masks(suffix_pad[None], suffix_att[None])[0]], dim=1)
        pos = prefix_pad.to(torch.int64).sum() + torch.cumsum(suffix_pad.to(torch.int64), dim=0) - 1
        for i in range(g["layers"]):
            lp = f"{EXPERT}layers.{i}."
            h, gate = ada_rms_norm(x, self.w(lp + "input_layernorm.dense.weight"),
                                   self.w(lp + "input_layernorm.dense.bias"), cond)
            q, k, v = self._qkv(lp, h, g, pos)
            a = attention(q, torch.cat([ks[i], k], dim=1), torch.cat([vs[i], v], dim=1), mask,
                          g["head_dim"] ** -0.5)
            x = x + F.linear(a, self.w(lp + "self_attn.o_proj.weight")) * gate
            h, gate = ada_rms_norm(x, self.w(lp + "post_attention_layernorm.dense.weight"),
                                   self.w(lp + "post_attention_layernorm.dense.bias"), cond)
            x = x + self._mlp(lp, h) * gate
        h, _ = ada_rms_norm(x, self.w(EXPERT + "norm.dense.weight"), self.w(EXPERT + "norm.dense.bias"), cond)
        return F.linear(h[-horizon:], self.w("action_out_proj.weight"), self.w("action_out_proj.bias"))

    # ------------------------------------------------------------ the request

    def prepare_prompt(self, prompt, state):
        """→ (tokens [max_len], mask [max_len], text, normalized state or None)."""
        norm_state = None
        if state is not None:
            norm_state = oi.normalize(np.asarray(state), self.norm_stats["state"], self.normalization)
        if self.discrete_state_input:
            if norm_state is None:
                raise ValueError("discrete_state_input: a state is required (openpi: 'State is required.')")
            tokens, mask, text = self.tokenizer.tokenize(prompt, norm_state)
        else:
            tokens, mask, text = self.tokenizer.tokenize(prompt, None)
        return tokens, mask, text, norm_state

    @torch.no_grad()
    def predict(self, images, num_views, prompt, state, noise, num_steps=10, compact=False):
        """compact=True drops masked view tokens and text padding before the LLM (what the engine
        does); openpi's padded formulation (False) must give the same valid rows."""
        images = list(images) + [None] * (num_views - len(images))
        if len(images) != num_views:
            raise ValueError(f"predict: {len(images)} images for num_views={num_views}")
        noise = np.asarray(noise, dtype=np.float32)
        if noise.ndim != 2 or noise.shape[1] != self.action_dim:
            raise ValueError(f"predict: noise must be (horizon, {self.action_dim}), got {noise.shape}")
        tokens, tok_mask, text, norm_state = self.prepare_prompt(prompt, state)

        # embed_prefix: every view slot (a missing one is a zero image with mask False), then text.
        pre = [oi.preprocess_image(im, self.vision["image"], self.vision["image"], self.image_resize)
               for im in images]
        vis = [self.embed_image(img) for img, _ in pre]
        embs = torch.cat(vis + [self.embed_tokens(tokens)], dim=0)
        pad = torch.cat([torch.full((t.shape[0],), m, dtype=torch.bool, device=self.device)
                         for t, (_, m) in zip(vis, pre)] +
                        [torch.from_numpy(tok_mask).to(self.device)])
        att = torch.zeros(pad.shape[0], dtype=torch.int64, device=self.device)
        if compact:
            embs, pad, att = embs[pad], pad[pad], att[pad]
        ks, vs = self.prefix_pass(embs, pad, att)

        # sample_actions: Euler from t = 1 to 0 in float32 time, as openpi.
        dt = torch.tensor(-1.0 / num_steps, dtype=torch.float32, device=self.device)
        t = torch.tensor(1.0, dtype=torch.float32, device=self.device)
        x = torch.from_numpy(noise).to(self.device, self.dtype)
        velocity_0 = None
        while t >= -dt / 2:
            v = self.denoise_step(pad, ks, vs, x, t.expand(1))
            velocity_0 = v if velocity_0 is None else velocity_0
            x = x + dt * v
            t = t + dt

        to_np = lambda a: a.detach().to("cpu", torch.float64).numpy().astype(np.float32)
        rows = lambda a: to_np(a[:, pad].transpose(0, 1).reshape(int(pad.sum()), -1))
        a_norm = to_np(x)
        actions = oi.unnormalize(a_norm, self.norm_stats["actions"], self.normalization).astype(np.float32)
        return {
            "actions": actions,
            "actions_normalized": a_norm,
            "prompt_ids": tokens[tok_mask],
            "prompt_text": text,
            "state_normalized": norm_state,
            "images": [img for img, _ in pre],
            "image_masks": [m for _, m in pre],
            "input_sizes": [None if im is None else tuple(np.shape(im)[:2]) for im in images],
            "vision_tokens": [to_np(t) for t in vis],
            "prefix_embeddings": to_np(embs[pad]),
            "prefix_k": [rows(k) for k in ks],
            "prefix_v": [rows(v) for v in vs],
            "velocity_0": to_np(velocity_0),
        }
