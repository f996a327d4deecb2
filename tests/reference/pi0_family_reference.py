"""Independent PyTorch reference of Pi0.5 and Pi0 inference, following openpi's PyTorch model
literally (Physical-Intelligence/openpi: models_pytorch/pi0_pytorch.py sample_actions /
embed_prefix / embed_suffix / denoise_step, gemma_pytorch.py, the transformers_replace Gemma /
SigLIP / PaliGemma files). Own code, only torch.nn.functional ops, no transformers.

One base class holds everything the two models share (weights, SigLIP + projector, text
embedding, the prefix pass with its KV cache, the expert loop over [prefix KV ; suffix], the
Euler sampler, prompt and norm-stat handling); the two model classes differ only where openpi
branches on `pi05`:
  Pi05Reference  suffix = action_in_proj(x); time → time_mlp_in/out (SiLU) → adaRMS cond;
                 expert norms are adaRMS, residuals gated; quantile stats; state in the prompt
                 (discrete_state_input, the pi05 default) or not at all.
  Pi0Reference   suffix = [state_proj(state) ; action_time_mlp_out(silu(action_time_mlp_in(
                 [action_in_proj(x), time_emb])))], ar-masks [1] + [1, 0, ...]: the state
                 token sees the prefix and itself, actions see prefix, state and each other;
                 plain (1 + w) RMSNorm and plain residuals in the expert; z-score stats; the
                 normalized state is zero-padded to action_dim (32) before state_proj;
                 prompt = BOS + tokens(clean) + tokens("\\n"), max_token_len 48.

Literal means: the full padded prefix (every view slot, masked ones included, and the text
padded to max_token_len), 2-D boolean masks from cumulative ar-masks AND pad masks turned into
an additive -2.3819763e38, position ids cumsum(pad) - 1 (suffix positions continue after the
valid prefix count), a prefix pass that keeps each layer's K (after RoPE) and V, then the Euler
loop from t = 1 with dt = -1/num_steps while t >= -dt/2.
Numerics: float32 by default (float64 allowed), weights widened from the file's bf16/f16; text
embeddings x float32(sqrt(width)) (openpi: `lang_emb * math.sqrt(dim)`, an fp32 multiply);
image features NOT divided by sqrt(width) (openpi removes it); GELU tanh; LayerNorm eps 1e-6;
time embedding in float64 then cast to float32. TF32 is OFF (openpi turns it on with
set_float32_matmul_precision("high")); no torch.compile. Runs on torch 1.13 and 2.x.
Tests: tests/python/test_reference_selfcheck.py, tests/python/test_reference_parity.py,
       tests/python/test_reference_parity_pi0.py.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from . import openpi_inputs as oi
from .model_ops import (LN_EPS, ada_rms_norm, apply_rope, attention, disable_tf32, gated_residual,
                        make_att_2d_masks, rms_norm, rope_cos_sin, sinusoidal_time_embedding,
                        suffix_attention_mask)
from .safetensors_np import SafetensorsFile, bf16_bits_to_f32

PREFIX = "paligemma_with_expert."
VISION = PREFIX + "paligemma.model.vision_tower.vision_model."
LLM = PREFIX + "paligemma.model.language_model."
EXPERT = PREFIX + "gemma_expert.model."
SIGLIP_HEAD_DIM = 72  # So400m: 1152 / 16


def _count_layers(ckpt, base, probe):
    n = 0
    while f"{base}layers.{n}.{probe}" in ckpt:
        n += 1
    return n


def checkpoint_arch(ckpt):
    """'pi05' (time_mlp_in), 'pi0' (state_proj) or None, as openpi's two layouts differ."""
    if "time_mlp_in.weight" in ckpt:
        return "pi05"
    if "state_proj.weight" in ckpt:
        return "pi0"
    return None


class Pi0FamilyReference:
    """The shared part; use Pi05Reference or Pi0Reference."""

    ARCH = None  # 'pi05' or 'pi0': the layout this class reads

    def __init__(self, checkpoint_dir, device="cpu", dtype=torch.float32, max_token_len=200,
                 discrete_state_input=True, normalization="quantile", asset_id=None,
                 tokenizer_path=None, image_resize="torch_float"):
        disable_tf32()
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
        found = checkpoint_arch(self.ckpt)
        if found != self.ARCH:
            raise NotImplementedError(
                f"{self.dir}: not a {self.ARCH} checkpoint (no {self.ARCH_KEY}); found "
                f"{found or 'neither time_mlp_in.weight (pi05) nor state_proj.weight (pi0)'}: "
                f"use {'Pi0Reference' if found == 'pi0' else 'Pi05Reference'}")
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

    # ------------------------------------------------------------ shared blocks

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

    def _linear(self, name, x):
        return F.linear(x, self.w(name + ".weight"), self.w(name + ".bias"))

    def time_embedding(self, t):
        """[1, expert width]: sinusoidal over the width of action_in_proj's output, as openpi."""
        return sinusoidal_time_embedding(t, self.w("action_in_proj.weight").shape[0]).to(t.dtype).to(self.dtype)

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

    def expert_hidden(self, prefix_pad, ks, vs, suffix, suffix_att, cond):
        """The action expert over [prefix KV ; suffix] → final-normed hidden states [S, width]
        of every suffix token. suffix_att: the suffix's ar-mask (int [S])."""
        g = self.expert
        mask = suffix_attention_mask(prefix_pad, suffix_att)
        pos = prefix_pad.to(torch.int64).sum() + torch.arange(suffix.shape[0], device=self.device)
        x = suffix
        for i in range(g["layers"]):
            lp = f"{EXPERT}layers.{i}."
            h, gate = self.expert_norm(x, lp + "input_layernorm", cond)
            q, k, v = self._qkv(lp, h, g, pos)
            a = attention(q, torch.cat([ks[i], k], dim=1), torch.cat([vs[i], v], dim=1), mask,
                          g["head_dim"] ** -0.5)
            x = gated_residual(x, F.linear(a, self.w(lp + "self_attn.o_proj.weight")), gate)
            h, gate = self.expert_norm(x, lp + "post_attention_layernorm", cond)
            x = gated_residual(x, self._mlp(lp, h), gate)
        return self.expert_norm(x, EXPERT + "norm", cond)[0]

    def denoise_step(self, prefix_pad, ks, vs, x_t, t, state=None):
        """One velocity [horizon, action_dim]: the expert at time t (float32 [1]); `state` is
        the model's suffix_state() (None for pi05)."""
        suffix, suffix_att, cond = self.embed_suffix(state, x_t, t)
        h = self.expert_hidden(prefix_pad, ks, vs, suffix, suffix_att, cond)
        return self._linear("action_out_proj", h[-x_t.shape[0]:])

    # ------------------------------------------------------------ what the two models define

    def embed_suffix(self, state, x_t, t):
        """→ (suffix embeddings [S, width], ar-mask int [S], adaRMS cond or None)."""
        raise NotImplementedError

    def expert_norm(self, x, name, cond):
        """→ (normed x, residual gate or None) of the expert norm `name` (no '.weight')."""
        raise NotImplementedError

    def suffix_state(self, norm_state):
        """The state input of denoise_step for this request (None: the model has none)."""
        return None

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
        step_state = self.suffix_state(norm_state)

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
            v = self.denoise_step(pad, ks, vs, x, t.expand(1), state=step_state)
            velocity_0 = v if velocity_0 is None else velocity_0
            x = x + dt * v
            t = t + dt

        to_np = lambda a: a.detach().to("cpu", torch.float64).numpy().astype(np.float32)
        rows = lambda a: to_np(a[:, pad].transpose(0, 1).reshape(int(pad.sum()), -1))
        a_norm = to_np(x)
        actions = oi.unnormalize(a_norm, self.norm_stats["actions"], self.normalization).astype(np.float32)
        out = {
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
        if step_state is not None:
            out["state_input"] = to_np(step_state[0])
        return out


class Pi05Reference(Pi0FamilyReference):
    """Pi0.5: adaRMS time conditioning; the state (if any) goes into the prompt."""

    ARCH, ARCH_KEY = "pi05", "time_mlp_in.weight"

    def embed_suffix(self, state, x_t, t):
        cond = F.silu(self._linear("time_mlp_in", self.time_embedding(t)))
        cond = F.silu(self._linear("time_mlp_out", cond))[0]
        horizon = x_t.shape[0]
        att = torch.tensor([1] + [0] * (horizon - 1), dtype=torch.int64, device=self.device)
        return self._linear("action_in_proj", x_t), att, cond

    def expert_norm(self, x, name, cond):
        return ada_rms_norm(x, self.w(name + ".dense.weight"), self.w(name + ".dense.bias"), cond)


class Pi0Reference(Pi0FamilyReference):
    """Pi0: a continuous state token through state_proj, time mixed into the action tokens."""

    ARCH, ARCH_KEY = "pi0", "state_proj.weight"

    def __init__(self, checkpoint_dir, device="cpu", dtype=torch.float32, max_token_len=48,
                 normalization="zscore", asset_id=None, tokenizer_path=None, image_resize="torch_float"):
        super().__init__(checkpoint_dir, device=device, dtype=dtype, max_token_len=max_token_len,
                         discrete_state_input=False, normalization=normalization, asset_id=asset_id,
                         tokenizer_path=tokenizer_path, image_resize=image_resize)

    def suffix_state(self, norm_state):
        """The normalized state zero-padded to action_dim (openpi PadStatesAndActions), [1, 32]."""
        if norm_state is None:
            raise ValueError("pi0: a state is required (pi0 feeds it to the action expert through state_proj)")
        s = np.asarray(norm_state, dtype=np.float64).ravel()
        if s.size > self.action_dim:
            raise ValueError(f"pi0: state has {s.size} dims; expected at most action_dim={self.action_dim}")
        padded = np.zeros(self.action_dim, dtype=np.float64)
        padded[:s.size] = s
        return torch.from_numpy(padded)[None].to(self.device, self.dtype)

    def embed_suffix(self, state, x_t, t):
        horizon = x_t.shape[0]
        action_emb = self._linear("action_in_proj", x_t)
        time_emb = self.time_embedding(t).expand(horizon, action_emb.shape[1])
        h = F.silu(self._linear("action_time_mlp_in", torch.cat([action_emb, time_emb], dim=1)))
        action_time_emb = self._linear("action_time_mlp_out", h)
        state_emb = self._linear("state_proj", state)  # [1, width]
        att = torch.tensor([1] + [1] + [0] * (horizon - 1), dtype=torch.int64, device=self.device)
        return torch.cat([state_emb, action_time_emb], dim=0), att, None

    def expert_norm(self, x, name, cond):
        return rms_norm(x, self.w(name + ".weight")), None
