"""X3D and SlowFast builders on pytorchvideo, their run options, complexity and Kinetics-400 weight loading.
May import safety/ (safe checkpoint loading); reads no dataset files and knows nothing of training."""

from .builders import ARCHITECTURES, VideoNet, build_model, clip_gflops

__all__ = ["ARCHITECTURES", "VideoNet", "build_model", "clip_gflops"]
