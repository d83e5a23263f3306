from .builders import ARCHITECTURES, VideoNet, build_model

__all__ = ["ARCHITECTURES", "VideoNet", "build_model"]
