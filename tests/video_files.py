"""Small video files in the containers and codecs people bring: written with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

AUDIO_RATE = 16000


def write_video(
    path: Path, codec: str, fps: int, width: int, height: int, frames: int, audio: str | None = None
) -> Path:
    """Frame t is uniformly grey at brightness 10 + 4t (capped), so decoded frames can be told apart."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream(audio, rate=AUDIO_RATE) if audio else None
        for t in range(frames):
            image = np.full((height, width, 3), min(10 + 4 * t, 250), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            samples = AUDIO_RATE * frames // fps
            tone = (3000 * np.sin(np.arange(samples) * 2 * np.pi * 440 / AUDIO_RATE)).astype(np.int16)[None]
            # encoders take fixed-size frames: feed the tone in chunks
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + 1024]), format="s16", layout="mono"
                )
                chunk.sample_rate = AUDIO_RATE
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path
