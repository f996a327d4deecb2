"""What openpi does to a request before and after the model, re-implemented in plain python/numpy
(facts from Physical-Intelligence/openpi; no code copied):

  prompt   models/tokenizer.py PaligemmaTokenizer.tokenize: clean (strip, '_'→' ', '\\n'→' ');
           with a state (pi05 discrete_state_input): "Task: {clean}, State: {bins};\\nAction: "
           tokenized with BOS, bins = digitize(state, linspace(-1, 1, 257)[:-1]) - 1;
           without: tokens(clean, BOS) + tokens("\\n"); padded with id 0 / mask False to
           max_len, or cut to max_len.
  stats    shared/normalize.py + transforms.py Normalize/Unnormalize: stats are float64;
           quantile x → (x - q01) / (q99 - q01 + 1e-6) * 2 - 1 with the stats cut to x's dims;
           inverse over the first len(q01) dims only, the rest pass through; z-score likewise
           with (std + 1e-6) (unnormalize pads mean with 0 and std with 1).
  images   uint8 HxWx3 → [-1, 1] as x.astype(f32) / 255 * 2 - 1 (models/model.py
           Observation.from_dict); resize-with-pad to 224: see resize_with_pad() for the three
           variants openpi has. A missing view is np.zeros_like(base image) with mask False
           (policies/libero_policy.py), i.e. all -1 after scaling.

Tests: tests/python/test_reference_selfcheck.py.
"""

import json
import os

import numpy as np

# ---------------------------------------------------------------- prompt


def clean_prompt(text):
    return text.strip().replace("_", " ").replace("\n", " ")


def discretize_state(normalized_state):
    """The 256 bins of a normalized state: values < -1 give -1, values >= 1 - 2/256 give 255."""
    edges = np.linspace(-1, 1, 256 + 1)[:-1]
    return np.digitize(np.asarray(normalized_state), bins=edges) - 1


def pi05_prompt_text(prompt, normalized_state):
    bins = discretize_state(normalized_state)
    state_str = " ".join(str(int(b)) for b in bins)
    return f"Task: {clean_prompt(prompt)}, State: {state_str};\nAction: "


class PaligemmaTokenizer:
    """openpi's PaligemmaTokenizer over a local SentencePiece model file."""

    def __init__(self, model_path, max_len):
        import sentencepiece  # the Debian python3-sentencepiece package

        self.max_len = int(max_len)
        self._sp = sentencepiece.SentencePieceProcessor()
        with open(model_path, "rb") as f:
            self._sp.LoadFromSerializedProto(f.read())

    def encode(self, text, add_bos=False):
        return list(self._sp.encode(text, add_bos=add_bos))

    def tokenize(self, prompt, normalized_state=None):
        """→ (tokens int64 [max_len], mask bool [max_len], text) as openpi (padding id 0).

        normalized_state: the normalized robot state (its own dims, not padded) for the pi05
        discrete-state format, or None for the plain format.
        """
        if normalized_state is not None:
            text = pi05_prompt_text(prompt, normalized_state)
            ids = self.encode(text, add_bos=True)
        else:
            text = clean_prompt(prompt) + "\n"
            ids = self.encode(clean_prompt(prompt), add_bos=True) + self.encode("\n")
        n = len(ids)
        if n < self.max_len:
            mask = [True] * n + [False] * (self.max_len - n)
            ids = ids + [0] * (self.max_len - n)
        else:
            ids = ids[:self.max_len]
            mask = [True] * self.max_len
        return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=bool), text


# ---------------------------------------------------------------- norm stats


def find_norm_stats(checkpoint_dir, asset_id=None):
    assets = os.path.join(checkpoint_dir, "assets")
    if asset_id:
        path = os.path.join(assets, asset_id, "norm_stats.json")
    else:
        ids = sorted(d for d in os.listdir(assets) if os.path.isfile(os.path.join(assets, d, "norm_stats.json"))) \
            if os.path.isdir(assets) else []
        if len(ids) != 1:
            raise FileNotFoundError(f"{assets}: expected exactly one asset dir with norm_stats.json, got {ids}; "
                                    "pass asset_id")
        path = os.path.join(assets, ids[0], "norm_stats.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"norm stats not found: {path}")
    return path


def load_norm_stats(path):
    """{"state": {"mean", "std", "q01", "q99"}, "actions": {...}} as float64 arrays (as openpi)."""
    with open(path) as f:
        raw = json.load(f)["norm_stats"]
    out = {}
    for key, st in raw.items():
        out[key] = {k: (None if v is None else np.asarray(v, dtype=np.float64)) for k, v in st.items()}
    return out


def normalize(x, stats, mode="quantile"):
    """transforms.Normalize over the last axis: stats cut to x's dims (x may not be longer)."""
    x = np.asarray(x)
    d = x.shape[-1]
    if mode == "quantile":
        if stats["q01"].shape[-1] < d:
            raise ValueError(f"normalize: state has {d} dims but the stats cover {stats['q01'].shape[-1]}")
        q01, q99 = stats["q01"][..., :d], stats["q99"][..., :d]
        return (x - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0
    if mode == "zscore":
        if stats["mean"].shape[-1] < d:
            raise ValueError(f"normalize: state has {d} dims but the stats cover {stats['mean'].shape[-1]}")
        return (x - stats["mean"][..., :d]) / (stats["std"][..., :d] + 1e-6)
    if mode == "none":
        return x
    raise ValueError(f"normalize: unknown mode {mode!r}")


def unnormalize(x, stats, mode="quantile"):
    """transforms.Unnormalize over the last axis (dims beyond the stats pass through)."""
    x = np.asarray(x)
    if mode == "quantile":
        q01, q99 = stats["q01"], stats["q99"]
        d = q01.shape[-1]
        if d < x.shape[-1]:
            return np.concatenate([(x[..., :d] + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01, x[..., d:]], axis=-1)
        return (x + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01
    if mode == "zscore":
        n = x.shape[-1]
        mean = np.pad(stats["mean"], (0, max(0, n - stats["mean"].shape[-1])), constant_values=0.0)[:n]
        std = np.pad(stats["std"], (0, max(0, n - stats["std"].shape[-1])), constant_values=1.0)[:n]
        return x * (std + 1e-6) + mean
    if mode == "none":
        return x
    raise ValueError(f"unnormalize: unknown mode {mode!r}")


# ---------------------------------------------------------------- images


def u8_to_unit(image_u8):
    """uint8 → float32 in [-1, 1], the same float32 operations as Observation.from_dict."""
    return np.asarray(image_u8).astype(np.float32) / 255.0 * 2.0 - 1.0


def resized_size(h, w, height, width):
    """(resized_h, resized_w, pad_top, pad_left) of openpi's resize-with-pad."""
    ratio = max(w / width, h / height)
    rh, rw = int(h / ratio), int(w / ratio)
    return rh, rw, (height - rh) // 2, (width - rw) // 2


RESIZE_MODES = ("torch_float", "torch_u8", "pil")


def bilinear_resize(img, out_h, out_w):
    """F.interpolate(mode="bilinear", align_corners=False, antialias=False) semantics, computed
    in float64 here: source coordinate (dst + 0.5) * in / out - 0.5 clamped at 0, neighbours
    floor(src) and min(floor(src) + 1, in - 1). img: [H, W, C] → float64 [out_h, out_w, C].

    Why not torch's kernel: its float32 result depends on how the source coordinates are
    formed (torch 1.13's CPU kernel: float32 in/out ratio, double arithmetic); coordinates in
    float32 move the result by up to ~4e-5 at 640x480 and ~1.4e-4 at 1080p. The reference pins
    the exact result; the parity bar for resized images ("images_resized") allows that spread.
    """
    h, w = img.shape[:2]

    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, ly = axis(h, out_h)
    x0, x1, lx = axis(w, out_w)
    x = np.asarray(img, dtype=np.float64)
    lx, ly = lx[None, :, None], ly[:, None, None]
    top = x[y0][:, x0] * (1 - lx) + x[y0][:, x1] * lx
    bottom = x[y1][:, x0] * (1 - lx) + x[y1][:, x1] * lx
    return top * (1 - ly) + bottom * ly


def resize_with_pad(image_u8, height=224, width=224, mode="torch_float"):
    """Resize-with-pad of a uint8 HxWx3 image → float32 [height, width, 3] in [-1, 1].

    openpi has three variants. They agree exactly when the image already has the target size;
    otherwise torch_u8 and torch_float differ by up to half a uint8 step (~0.0039) and pil
    (antialiased) by more:
      torch_float  (default) what openpi's PyTorch model does with a non-224 image: scale to
                   [-1, 1] first (models/model.py Observation.from_dict), then
                   shared/image_tools.resize_with_pad_torch's float branch: bilinear
                   (align_corners=False, no antialias), clamp to [-1, 1], pad with -1. No
                   rounding step, so a float implementation matches it closely.
      torch_u8     resize_with_pad_torch's uint8 branch: bilinear, round half-to-even, clamp to
                   [0, 255], zero padding, then scaled. Not reached in openpi's model path.
                   Fragile as a parity target: weights of exactly 0.5 are common (640 -> 224 is
                   a 20/7 ratio), so whether an x.5 rounds up depends on float rounding
                   (~0.7% of pixels flip between float32 and float64 arithmetic).
      pil          openpi's policy input transform ResizeImages (openpi_client.image_tools):
                   PIL bilinear (antialiased when shrinking) on uint8, zero padding. This is
                   what an openpi policy server does before the model; needs Pillow.
    The bilinear of the torch variants is bilinear_resize() (float64, exact semantics).
    """
    img = np.asarray(image_u8)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"resize_with_pad: expected uint8 HxWx3, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if (h, w) == (height, width):  # every variant leaves a target-size image as it is
        return u8_to_unit(img)
    rh, rw, top, left = resized_size(h, w, height, width)
    if mode == "pil":
        from PIL import Image

        small = np.asarray(Image.fromarray(img).resize((rw, rh), resample=Image.BILINEAR))
        out = np.zeros((height, width, 3), dtype=np.uint8)
        out[top:top + rh, left:left + rw] = small
        return u8_to_unit(out)
    if mode == "torch_u8":
        small = np.clip(np.round(bilinear_resize(img, rh, rw)), 0, 255).astype(np.uint8)
        out = np.zeros((height, width, 3), dtype=np.uint8)
        out[top:top + rh, left:left + rw] = small
        return u8_to_unit(out)
    if mode == "torch_float":
        out = np.full((height, width, 3), -1.0, dtype=np.float32)
        out[top:top + rh, left:left + rw] = np.clip(bilinear_resize(u8_to_unit(img), rh, rw), -1.0, 1.0)
        return out
    raise ValueError(f"resize_with_pad: unknown mode {mode!r}; expected one of {RESIZE_MODES}")


def preprocess_image(image_u8, height=224, width=224, mode="torch_float"):
    """→ (float32 [height, width, 3] in [-1, 1], mask). None (missing view) → all -1, False."""
    if image_u8 is None:
        return u8_to_unit(np.zeros((height, width, 3), dtype=np.uint8)), False
    return resize_with_pad(image_u8, height, width, mode), True
