"""Write real video containers (H.264 + AAC in mp4) from frames and samples, with PyAV."""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np

AUDIO_CHUNK = 1024  # samples per AAC frame
VFR_TIME_BASE = Fraction(1, 90_000)  # the usual video clock of mp4 and MPEG-TS


def encode_mp4(
    frames: np.ndarray,
    fps: float | Fraction,
    audio: np.ndarray | None,
    sample_rate: int,
    crf: int = 23,
    *,
    frame_times_s: Sequence[float] | None = None,
    audio_start_s: float = 0.0,
    rotation: int = 0,
    preset: str = "superfast",
) -> bytes:
    """An mp4 file (bytes) from uint8 RGB frames ``(n, H, W, 3)`` and mono float32 audio in -1..1.

    ``audio=None`` writes a file without an audio track. The keyword options reproduce what real
    uploads carry, so that decoding can be tested on it: ``frame_times_s`` gives every frame its own
    presentation time (variable frame rate; ``fps`` is then only the encoder's rate hint),
    ``audio_start_s`` starts the audio track that late on the container clock, and ``rotation``
    (degrees counter-clockwise, as PyAV's ``VideoFrame.rotation`` reads it back) is written as the
    display-matrix metadata with which phones store portrait video as landscape frames.
    """
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        video.options = {"crf": str(crf), "preset": preset}
        if rotation:
            video.set_display_rotation(rotation)
        if frame_times_s is not None:
            video.codec_context.time_base = VFR_TIME_BASE
        sound = None if audio is None else container.add_stream("aac", rate=sample_rate, layout="mono")
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: video.height, : video.width]), format="rgb24")
            if frame_times_s is not None:
                frame.pts, frame.time_base = int(round(frame_times_s[i] / VFR_TIME_BASE)), VFR_TIME_BASE
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = np.clip(audio, -1.0, 1.0).astype(np.float32)[None, :]
            first = int(round(audio_start_s * sample_rate))
            for i in range(0, samples.shape[1], AUDIO_CHUNK):
                chunk = np.ascontiguousarray(samples[:, i : i + AUDIO_CHUNK])
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = sample_rate, first + i
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return buffer.getvalue()
