from .builders import ARCHITECTURES, VideoNet, build_model
from .complexity import clip_gflops

__all__ = ["ARCHITECTURES", "VideoNet", "build_model", "clip_gflops"]
