"""Decode an uploaded file (bytes) with PyAV onto the model's fixed timeline.

Frames are placed by their presentation timestamps, never by index / nominal fps: timeline frame
``k`` is the frame on screen at ``k / fps`` seconds (sample-and-hold), which is what a viewer sees
for any frame rate, including variable ones. Audio is placed on the same clock: sample 0 of the
returned audio is the instant of the first video frame.

Pixels come from ``to_rgb`` / ``to_gray``, which turn the frame upright: phones store portrait
video as landscape frames plus a display-matrix rotation that players honour, and a face lying on
its side is neither detected nor cropped like the faces the model was trained on.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import av
import numpy as np

from .config import PreprocessConfig

_EPS_S = 1e-4  # timestamps are rounded to the stream time base; absorb that rounding


class MediaError(ValueError):
    """The upload cannot be analysed (not a video, no audio track, too short, ...)."""


def _open(data: bytes) -> av.container.InputContainer:
    if not data:
        raise MediaError("empty upload: expected a video file (mp4, webm, mov, avi)")
    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaError(f"cannot read the upload as a video container: {exc}") from exc


def _timed_frames(data: bytes) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded video frames with their presentation time in seconds, in display order."""
    with _open(data) as container:
        if not container.streams.video:
            raise MediaError("the upload has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if frame.time is not None:
                    yield frame.time, frame
        except av.error.FFmpegError as exc:
            raise MediaError(f"the video stream is corrupt: {exc}") from exc


def first_frame_time(data: bytes) -> float:
    """Presentation time of the first video frame: the origin of the model's timeline."""
    for time_s, _ in _timed_frames(data):
        return time_s
    raise MediaError("the video stream has no decodable frames")


def iter_timeline_frames(data: bytes, cfg: PreprocessConfig) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(k, frame)`` for every timeline frame ``k = 0 .. n-1`` (sample-and-hold by pts).

    Frames are yielded undecoded to pixels so that each caller converts only what it needs, with
    ``to_gray`` (a small image for face detection) or ``to_rgb`` (mouth crops); a held frame is the
    same object on every timeline frame it covers, so it need be converted once.
    """
    k = 0
    previous: tuple[float, av.VideoFrame] | None = None
    origin = 0.0
    frame_step = 1.0 / cfg.timeline.fps  # the nominal interval, for a video of a single frame
    for time_s, frame in _timed_frames(data):
        if previous is None:
            origin = time_s
        else:
            frame_step = time_s - previous[0]
            while k / cfg.timeline.fps < time_s - origin - _EPS_S:
                yield k, previous[1]
                k += 1
        previous = (time_s, frame)
    if previous is None:
        raise MediaError("the video stream has no decodable frames")
    end = previous[0] - origin + frame_step  # the last frame stays on screen for one interval
    while k / cfg.timeline.fps < end - _EPS_S:
        yield k, previous[1]
        k += 1


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show the frame as players do (its display-matrix rotation)."""
    return round(frame.rotation / 90) % 4


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Upright uint8 RGB pixels ``(H, W, 3)`` of a timeline frame."""
    return np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), _quarter_turns(frame)))


def to_gray(frame: av.VideoFrame, max_width: int) -> tuple[np.ndarray, float]:
    """Upright uint8 grey pixels at most ``max_width`` wide, and the factor back to ``to_rgb`` pixels.

    The stored frame is scaled first (cheap, in libswscale) and the small image is turned, so under a
    quarter turn the stored height is the width that ``max_width`` bounds.
    """
    turns = _quarter_turns(frame)
    width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    small_width = min(max_width, width)
    scale = width / small_width
    small_height = max(2, int(round(height / scale)))
    stored = (small_height, small_width) if turns % 2 else (small_width, small_height)
    gray = frame.reformat(width=stored[0], height=stored[1], format="gray").to_ndarray()
    return np.ascontiguousarray(np.rot90(gray, turns)), scale


def decode_audio(data: bytes, cfg: PreprocessConfig, origin_s: float, n_samples: int) -> np.ndarray:
    """Mono float32 audio at ``cfg.audio.sample_rate``; sample 0 is at ``origin_s`` (the first video frame).

    Audio that starts late is preceded by silence; audio before the first frame or after the last
    one has no picture to be in sync with and is not returned. Exactly ``n_samples`` come back.
    """
    chunks: list[np.ndarray] = []
    start_s = None
    with _open(data) as container:
        if not container.streams.audio:
            raise MediaError("the upload has no audio track: lip-sync needs speech")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=cfg.audio.sample_rate)
        try:
            for frame in container.decode(stream):
                if start_s is None and frame.time is not None:
                    start_s = frame.time
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise MediaError(f"the audio stream is corrupt: {exc}") from exc
    if not chunks:
        raise MediaError("the audio track has no decodable samples")
    audio = np.concatenate(chunks).astype(np.float32)
    shift = int(round(((start_s or 0.0) - origin_s) * cfg.audio.sample_rate))
    if shift > 0:
        audio = np.concatenate([np.zeros(shift, np.float32), audio])
    else:
        audio = audio[-shift:]
    out = np.zeros(n_samples, np.float32)
    n = min(n_samples, audio.size)
    out[:n] = audio[:n]
    return out
