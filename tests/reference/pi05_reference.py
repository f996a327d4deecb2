"""Pi0.5 reference, kept at its historical import path: `from tests.reference.pi05_reference
import Pi05Reference` (bench/, scripts/device/, the parity suite). The code lives in
pi0_family_reference.py (the model classes) and model_ops.py (the stateless ops); this module
only re-exports them. Tests: tests/python/test_reference_selfcheck.py,
tests/python/test_reference_parity.py.
"""

from .model_ops import (LN_EPS, MASK_VALUE, RMS_EPS, ROPE_THETA, ada_rms_norm, apply_rope,
                        attention, gated_residual, make_att_2d_masks, rms_norm, rope_cos_sin,
                        sinusoidal_time_embedding, suffix_attention_mask)
from .pi0_family_reference import (EXPERT, LLM, PREFIX, SIGLIP_HEAD_DIM, VISION,
                                   Pi05Reference, checkpoint_arch)

__all__ = ["Pi05Reference", "checkpoint_arch", "PREFIX", "VISION", "LLM", "EXPERT", "SIGLIP_HEAD_DIM",
           "LN_EPS", "MASK_VALUE", "RMS_EPS", "ROPE_THETA", "ada_rms_norm", "apply_rope", "attention",
           "gated_residual", "make_att_2d_masks", "rms_norm", "rope_cos_sin", "sinusoidal_time_embedding",
           "suffix_attention_mask"]
