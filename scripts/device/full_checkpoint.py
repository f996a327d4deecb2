"""Makes (once) the full-size synthetic Pi0.5 checkpoint on the device machine and returns its path."""
import os

import flash_rt

FULL_DIR = os.environ.get("FLASHRT_FULL_CKPT", "/tmp/frt_full_pi05")


def full_checkpoint():
    if not os.path.isfile(os.path.join(FULL_DIR, "model.safetensors")):
        flash_rt.make_checkpoint(FULL_DIR, config="pi05", size="full", seed=0)
    return FULL_DIR
