"""Validation of load_model / make_checkpoint arguments, in pure Python, before the library is
touched: every message names the argument, what was given and what is allowed.
Tests: tests/python/test_python_api.py (run without libflashrt.so).
"""

import dataclasses
import difflib
import numbers
import os
import pathlib

import numpy as np

from ._errors import ArgumentTypeError

CONFIGS = ("pi05", "pi0", "auto")
HARDWARE = ("auto", "cpu", "cuda")
NORMALIZATIONS = ("quantile", "zscore", "none")
CHECKPOINT_CONFIGS = ("pi05", "pi0")
CHECKPOINT_SIZES = ("tiny", "full")

LOAD_KWARGS = ("checkpoint", "config", "num_views", "num_steps", "hardware", "action_horizon",
               "max_token_len", "discrete_state_input", "normalization", "norm_stats_asset",
               "tokenizer_path", "default_prompt", "seed", "cuda_graphs", "profile_ops", "use_fp8")


def is_int(value):
    """True for Python/numpy integers, False for bool (a common slip: num_steps=True)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_arg(name, value, lo, hi, allow_none=False, none_means=""):
    if value is None and allow_none:
        return None
    if not is_int(value):
        allowed = "an int in {}..{}".format(lo, hi) + (" or None" if allow_none else "")
        raise ArgumentTypeError("{}={!r} ({}) is not allowed; expected {}{}".format(
            name, value, type(value).__name__, allowed,
            " ({})".format(none_means) if none_means else ""))
    if not lo <= int(value) <= hi:
        raise ValueError("{}={} is out of range; allowed: {}..{}{}".format(
            name, int(value), lo, hi, " or None ({})".format(none_means) if allow_none else ""))
    return int(value)


# Spellings people use for an allowed value (difflib would suggest 'cpu' for 'gpu').
ALIASES = {"gpu": "cuda", "cuda:0": "cuda", "pi0.5": "pi05", "pi05_base": "pi05",
           "z-score": "zscore", "z_score": "zscore", "mean_std": "zscore", "quantiles": "quantile"}


def choice_arg(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        hint = ""
        if isinstance(value, str):
            close = [ALIASES[value.lower()]] if ALIASES.get(value.lower()) in allowed else \
                difflib.get_close_matches(value.lower(), allowed, n=1)
            hint = "; did you mean {!r}?".format(close[0]) if close else ""
        raise ValueError("{}={!r} is not allowed; expected one of {}{}".format(
            name, value, ", ".join(repr(a) for a in allowed), hint))
    return value


def str_arg(name, value, allow_none=True):
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise ArgumentTypeError("{} must be a str{}, got {} ({!r})".format(
            name, " or None" if allow_none else "", type(value).__name__, value))
    return value


def path_arg(name, value):
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentTypeError("{} must be a path (str or os.PathLike), got {} ({!r})".format(
            name, type(value).__name__, value))
    path = os.fspath(value)
    if not isinstance(path, str):
        raise ArgumentTypeError("{} must be a str path, got bytes {!r}".format(name, path))
    return path


@dataclasses.dataclass
class LoadArgs:
    checkpoint: str
    config: str
    num_views: int
    num_steps: int  # 0 = library default (10)
    hardware: str
    action_horizon: int  # 0 = 50
    max_token_len: int  # 0 = config default
    discrete_state_input: int  # -1 default, 0, 1
    normalization: object  # None or a name in NORMALIZATIONS
    norm_stats_asset: object
    tokenizer_path: object
    default_prompt: object
    seed: int
    cuda_graphs: bool = True
    profile_ops: bool = False
    use_fp8: int = -1  # -1 auto, 0 bf16, 1 fp8


def check_unknown_kwargs(kwargs):
    if kwargs:
        parts = []
        for key in sorted(kwargs):
            close = difflib.get_close_matches(key, LOAD_KWARGS, n=1)
            parts.append(repr(key) + (" (did you mean {!r}?)".format(close[0]) if close else ""))
        raise TypeError("load_model() got unexpected keyword argument(s): {}; accepted: {}".format(
            ", ".join(parts), ", ".join(LOAD_KWARGS)))


def validate_load_args(checkpoint, config="pi05", num_views=2, num_steps=None, hardware="auto",
                       action_horizon=None, max_token_len=None, discrete_state_input=None,
                       normalization=None, norm_stats_asset=None, tokenizer_path=None,
                       default_prompt=None, seed=0, cuda_graphs=True, profile_ops=False,
                       use_fp8=None):
    """Checks every load_model argument; returns LoadArgs with library encodings (0 = default)."""
    if use_fp8 is not None and not isinstance(use_fp8, (bool, np.bool_)):
        raise ArgumentTypeError("use_fp8={!r} is not allowed; expected True, False or None (FP8 "
                                "where the GPU supports it)".format(use_fp8))
    for name, value in (("cuda_graphs", cuda_graphs), ("profile_ops", profile_ops)):
        if not isinstance(value, (bool, np.bool_)):
            raise ArgumentTypeError("{}={!r} is not allowed; expected True or False".format(
                name, value))
    ckpt = path_arg("checkpoint", checkpoint)
    p = pathlib.Path(ckpt)
    if not p.exists():
        raise FileNotFoundError(
            "checkpoint={!r} does not exist; expected a checkpoint directory (model.safetensors, "
            "assets/<id>/norm_stats.json); make a synthetic one with "
            "flash_rt.make_checkpoint(dir) or `flashrt make-checkpoint DIR`".format(ckpt))
    if not p.is_dir():
        raise NotADirectoryError(
            "checkpoint={!r} is a file; pass the directory that holds it ({!r})".format(
                ckpt, str(p.parent)))
    config = choice_arg("config", config, CONFIGS)
    views = int_arg("num_views", num_views, 1, 3)
    steps = int_arg("num_steps", num_steps, 1, 1000, allow_none=True, none_means="10")
    hardware = choice_arg("hardware", hardware, HARDWARE)
    horizon = int_arg("action_horizon", action_horizon, 1, 1024, allow_none=True,
                      none_means="50")
    tokens = int_arg("max_token_len", max_token_len, 2, 4096, allow_none=True,
                     none_means="pi05 200, pi0 48")
    if discrete_state_input is None:
        dsi = -1
    elif isinstance(discrete_state_input, (bool, np.bool_)) or (
            is_int(discrete_state_input) and int(discrete_state_input) in (0, 1)):
        dsi = int(bool(discrete_state_input))
    else:
        raise ValueError("discrete_state_input={!r} is not allowed; expected True, False or None "
                         "(config default: pi05 True, pi0 False)".format(discrete_state_input))
    if normalization is not None:
        choice_arg("normalization", normalization, NORMALIZATIONS)
    asset = str_arg("norm_stats_asset", norm_stats_asset)
    if asset is not None and (not asset or "/" in asset or asset in (".", "..")):
        raise ValueError("norm_stats_asset={!r} is not allowed; expected the name of a directory "
                         "under {}/assets/".format(asset, ckpt))
    tok = None
    if tokenizer_path is not None:
        tok = path_arg("tokenizer_path", tokenizer_path)
        if not os.path.isfile(tok):
            raise FileNotFoundError(
                "tokenizer_path={!r} does not exist or is not a file; expected the PaliGemma "
                "SentencePiece model (paligemma_tokenizer.model), or None to search the "
                "default places".format(tok))
    prompt = str_arg("default_prompt", default_prompt)
    seed = int_arg("seed", seed, 0, 2 ** 64 - 1)
    return LoadArgs(ckpt, config, views, steps or 0, hardware, horizon or 0, tokens or 0, dsi,
                    normalization, asset, tok, prompt, seed, bool(cuda_graphs), bool(profile_ops),
                    -1 if use_fp8 is None else int(bool(use_fp8)))


def validate_checkpoint_args(out_dir, config, size, seed):
    out = path_arg("out_dir", out_dir)
    choice_arg("config", config, CHECKPOINT_CONFIGS)
    choice_arg("size", size, CHECKPOINT_SIZES)
    return out, config, size, int_arg("seed", seed, 0, 2 ** 64 - 1)
