"""Makes (once) a full-size synthetic checkpoint (Pi0.5 or Pi0) on the device machine and returns
its path."""
import os

import flash_rt

FULL_DIRS = {"pi05": os.environ.get("FLASHRT_FULL_CKPT", "/tmp/frt_full_pi05"),
             "pi0": os.environ.get("FLASHRT_FULL_CKPT_PI0", "/tmp/frt_full_pi0")}


def full_checkpoint(config="pi05"):
    path = FULL_DIRS[config]
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        flash_rt.make_checkpoint(path, config=config, size="full", seed=0)
    return path
