"""Stateless torch building blocks of the Pi0 / Pi0.5 reference, written from openpi's PyTorch
model (Physical-Intelligence/openpi: models_pytorch/pi0_pytorch.py make_att_2d_masks /
create_sinusoidal_pos_embedding / _prepare_attention_masks_4d, and the transformers_replace
Gemma files: RMSNorm, adaRMS, rotary embedding, eager attention). Own code, only
torch.nn.functional ops, no transformers. Used by pi0_family_reference.py.

Numerics: RMSNorm x*rsqrt(mean(x^2)+1e-6)*(1+w); adaRMS dense(cond) chunked as (scale, shift,
gate), x_n*(1+scale)+shift; masked logits get -2.3819763e38 added (a fully masked row becomes
uniform, as in openpi); the time embedding is computed in float64.
Tests: tests/python/test_reference_selfcheck.py.
"""

import math

import torch
import torch.nn.functional as F

MASK_VALUE = -2.3819763e38  # openpi's _prepare_attention_masks_4d
RMS_EPS = 1e-6
LN_EPS = 1e-6
ROPE_THETA = 10000.0


def disable_tf32():
    """Full fp32 matmuls/convs on GPU (openpi itself runs TF32; a parity reference must not)."""
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


def suffix_attention_mask(prefix_pad, suffix_att):
    """openpi denoise_step's mask: suffix rows see every valid prefix token, and suffix tokens
    as make_att_2d_masks says (all suffix tokens are valid). prefix_pad bool [P], suffix_att
    int [S] → bool [S, P + S]."""
    n = suffix_att.shape[0]
    suffix_pad = torch.ones(n, dtype=torch.bool, device=suffix_att.device)
    return torch.cat([prefix_pad[None, :].expand(n, prefix_pad.shape[0]),
                      make_att_2d_masks(suffix_pad[None], suffix_att[None])[0]], dim=1)


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


def gated_residual(x, y, gate):
    """openpi _gated_residual: x + y * gate (pi05's adaRMS), or x + y when gate is None (pi0)."""
    return x + y if gate is None else x + y * gate


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
