"""strdiff_edu: StrDiffusion (Liu et al., CVPR 2024) explained, derived and implemented.

The book (``book/``) narrates; this package holds every piece of code it runs.
"""
from .device import describe_device, make_generator, pick_device, seed_everything
from .profiles import ENV_VAR as PROFILE_ENV_VAR
from .profiles import PRESETS, Profile, SDEConfig, get_profile, profile_name
from .sde import MeanRevertingSDE, theta_schedule

__version__ = "0.1.0"

__all__ = [
    "MeanRevertingSDE", "theta_schedule", "Profile", "SDEConfig", "PRESETS", "get_profile",
    "profile_name", "PROFILE_ENV_VAR", "pick_device", "describe_device", "seed_everything",
    "make_generator", "__version__",
]
