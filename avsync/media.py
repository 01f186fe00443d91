"""Write real video containers (H.264 + AAC in mp4) from frames and samples, with PyAV."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

AUDIO_CHUNK = 1024  # samples per AAC frame


def encode_mp4(frames: np.ndarray, fps: float, audio: np.ndarray | None, sample_rate: int, crf: int = 23) -> bytes:
    """An mp4 file (bytes) from uint8 RGB frames ``(n, H, W, 3)`` and mono float32 audio in -1..1.

    ``audio=None`` writes a file without an audio track.
    """
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        video.options = {"crf": str(crf), "preset": "superfast"}
        sound = None if audio is None else container.add_stream("aac", rate=sample_rate, layout="mono")
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: video.height, : video.width]), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = np.clip(audio, -1.0, 1.0).astype(np.float32)[None, :]
            for i in range(0, samples.shape[1], AUDIO_CHUNK):
                chunk = np.ascontiguousarray(samples[:, i : i + AUDIO_CHUNK])
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, i
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return buffer.getvalue()
