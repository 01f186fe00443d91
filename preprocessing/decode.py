"""Decode an uploaded file (bytes) with PyAV onto the model's fixed timeline.

Frames are placed by their presentation timestamps, never by index / nominal fps: timeline frame
``k`` is the frame on screen at ``k / fps`` seconds (sample-and-hold), which is what a viewer sees
for any frame rate, including variable ones. Audio is placed on the same clock: sample 0 of the
returned audio is the instant of the first video frame.

Pixels come from ``to_rgb`` / ``to_small``, which turn the frame upright: phones store portrait
video as landscape frames plus a display-matrix rotation that players honour, and a face lying on
its side is neither detected nor cropped like the faces the model was trained on.

Cost follows timestamps and headers, not bytes (a 40 kB file can declare an hour, 16000x16000
frames or audio starting at 20000 s), so ``cfg.limits`` is enforced before memory or CPU is spent:
the upload's size and the container's declared duration and frame size when it is opened, every
frame's size, gap, span and count as it is decoded, the audio's start before any silence is
placed, and a wall-clock budget (``wall_clock_budget``) on every decoded frame.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .config import DEFAULT_CONFIG, LimitsConfig, PreprocessConfig

_EPS_S = 1e-4  # timestamps are rounded to the stream time base; absorb that rounding
_deadline: ContextVar[tuple[float, float] | None] = ContextVar("decode_deadline", default=None)  # (monotonic end, budget)


class MediaError(ValueError):
    """The upload cannot be analysed (not a video, no audio track, too short, too costly, ...)."""


@contextmanager
def wall_clock_budget(seconds: float) -> Iterator[None]:
    """Every frame decoded inside this block checks the deadline: one upload cannot hold a step for
    minutes, whatever its headers claim (client timeouts do not stop server work)."""
    token = _deadline.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def _check_budget() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline[0]:
        raise MediaError(f"the upload needs more than {deadline[1]:.0f} s to analyse: refused")


def _check_pixels(width: int, height: int, limits: LimitsConfig) -> None:
    if width * height > limits.max_frame_pixels:
        raise MediaError(f"frames of {width}x{height} pixels; this server takes at most {limits.max_frame_pixels} pixels per frame")


def _check_header(container: av.container.InputContainer, limits: LimitsConfig) -> None:
    """Refuse what the container declares before a frame is decoded (a lying header is caught while decoding)."""
    declared = declared_duration(container)
    if declared is not None and declared > limits.max_duration_s:
        raise MediaError(f"the file declares {declared:.0f} s; this server takes at most {limits.max_duration_s:.0f} s")
    for stream in container.streams.video:
        if stream.codec_context is None:
            raise MediaError("the video stream's codec is unknown or unsupported")
        _check_pixels(stream.codec_context.width, stream.codec_context.height, limits)
        if stream.frames > limits.max_video_frames:
            raise MediaError(f"the file declares {stream.frames} frames; this server takes at most {limits.max_video_frames}")


def _open(data: bytes, cfg: PreprocessConfig) -> av.container.InputContainer:
    if not data:
        raise MediaError("empty upload: expected a video file (mp4, webm, mov, avi)")
    if len(data) > cfg.limits.max_upload_bytes:
        raise MediaError(f"the upload is {len(data)} bytes; this server takes at most {cfg.limits.max_upload_bytes}")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaError(f"cannot read the upload as a video container: {exc}") from exc
    try:
        _check_header(container, cfg.limits)
    except MediaError:
        container.close()
        raise
    return container


def declared_duration(container: av.container.InputContainer) -> float | None:
    """The duration the container's header declares (seconds), when it declares one."""
    return container.duration / av.time_base if container.duration and container.duration > 0 else None


def declared_video_duration(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> float | None:
    """What the upload claims to last: compared with what decodes, it tells a truncated file."""
    with _open(data, cfg) as container:
        return declared_duration(container)


def _timed_frames(data: bytes, cfg: PreprocessConfig) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded video frames with their presentation time in seconds, in display order, within the limits."""
    limits = cfg.limits
    with _open(data, cfg) as container:
        if not container.streams.video:
            raise MediaError("the upload has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first = last = None
        try:
            for count, frame in enumerate(container.decode(stream), 1):
                _check_budget()
                _check_pixels(frame.width, frame.height, limits)
                if count > limits.max_video_frames:
                    raise MediaError(f"more than {limits.max_video_frames} video frames; this server takes at most that many")
                if frame.time is None:
                    continue
                first = frame.time if first is None else first
                if frame.time - first > limits.max_duration_s:
                    raise MediaError(f"frames span more than {limits.max_duration_s:.0f} s; this server takes at most that")
                if last is not None and frame.time - last > limits.max_frame_gap_s:
                    raise MediaError(f"no video frame for {frame.time - last:.1f} s (from {last:.1f} s); this server "
                                     f"takes gaps of at most {limits.max_frame_gap_s:.0f} s")
                last = frame.time
                yield frame.time, frame
        except (av.error.FFmpegError, IndexError) as exc:  # IndexError: PyAV meets a packet of an undeclared stream
            raise MediaError(f"the video stream is corrupt: {exc}") from exc


def first_frame_time(data: bytes, cfg: PreprocessConfig = DEFAULT_CONFIG) -> float:
    """Presentation time of the first video frame: the origin of the model's timeline."""
    for time_s, _ in _timed_frames(data, cfg):
        return time_s
    raise MediaError("the video stream has no decodable frames")


def iter_timeline_frames(data: bytes, cfg: PreprocessConfig) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(k, frame)`` for every timeline frame ``k = 0 .. n-1`` (sample-and-hold by pts).

    Frames are yielded undecoded to pixels so that each caller converts only what it needs, with
    ``to_small`` (a small image for face detection) or ``to_rgb`` (mouth crops); a held frame is the
    same object on every timeline frame it covers, so it need be converted once.
    """
    k = 0
    previous: tuple[float, av.VideoFrame] | None = None
    origin = 0.0
    shortest_gap = np.inf
    for time_s, frame in _timed_frames(data, cfg):
        if previous is None:
            origin = time_s
        else:
            if time_s - previous[0] > _EPS_S:
                shortest_gap = min(shortest_gap, time_s - previous[0])
            while k / cfg.timeline.fps < time_s - origin - _EPS_S:
                yield k, previous[1]
                k += 1
        previous = (time_s, frame)
    if previous is None:
        raise MediaError("the video stream has no decodable frames")
    frame_step = shortest_gap if np.isfinite(shortest_gap) else 1.0 / cfg.timeline.fps  # one frame: the nominal interval
    end = previous[0] - origin + frame_step  # the last frame stays on screen for one frame interval, never a long gap
    while k / cfg.timeline.fps < end - _EPS_S:
        yield k, previous[1]
        k += 1


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show the frame as players do (its display-matrix rotation)."""
    return round(frame.rotation / 90) % 4


_SWSCALE = threading.local()


def _reformat(frame: av.VideoFrame, **kwargs: object) -> av.VideoFrame:
    """``frame.reformat`` through this thread's one libswscale context, reused from frame to frame.

    ``VideoFrame.reformat`` builds a new context on every call, which costs about twice the colour
    conversion itself (2.5 against 0.8 ms per 640x480 frame); the pixels are the same either way.
    """
    reformatter = getattr(_SWSCALE, "reformatter", None)
    if reformatter is None:
        reformatter = _SWSCALE.reformatter = VideoReformatter()
    return reformatter.reformat(frame, **kwargs)


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Upright uint8 RGB pixels ``(H, W, 3)`` of a timeline frame."""
    return np.ascontiguousarray(np.rot90(_reformat(frame, format="rgb24").to_ndarray(), _quarter_turns(frame)))


def to_small(frame: av.VideoFrame, max_width: int, pixel_format: str = "rgb24") -> tuple[np.ndarray, float]:
    """Upright uint8 pixels (``rgb24`` or ``gray``) at most ``max_width`` wide, and the factor back to ``to_rgb`` pixels.

    The stored frame is scaled first (cheap, in libswscale) and the small image is turned, so under a
    quarter turn the stored height is the width that ``max_width`` bounds.
    """
    turns = _quarter_turns(frame)
    width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    small_width = min(max_width, width)
    scale = width / small_width
    small_height = max(2, int(round(height / scale)))
    stored = (small_height, small_width) if turns % 2 else (small_width, small_height)
    small = _reformat(frame, width=stored[0], height=stored[1], format=pixel_format).to_ndarray()
    return np.ascontiguousarray(np.rot90(small, turns)), scale


def decode_audio(data: bytes, cfg: PreprocessConfig, origin_s: float, n_samples: int) -> np.ndarray:
    """Mono float32 audio at ``cfg.audio.sample_rate``; sample 0 is at ``origin_s`` (the first video frame).

    Audio that starts late is preceded by silence; audio before the first frame or after the last
    one has no picture to be in sync with and is not returned (nor decoded past the last frame).
    Exactly ``n_samples`` come back; samples are written in place, so a late start costs no silence.
    """
    out = np.zeros(n_samples, np.float32)
    at: int | None = None  # where the next resampled sample goes in ``out`` (negative: before the first frame)
    decoded = False
    with _open(data, cfg) as container:
        if not container.streams.audio:
            raise MediaError("the upload has no audio track: lip-sync needs speech")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=cfg.audio.sample_rate)
        try:
            for frame in container.decode(stream):
                _check_budget()
                if at is None:
                    at = _audio_start(frame.time or 0.0, origin_s, cfg)
                for chunk in resampler.resample(frame):
                    at, decoded = _place(out, chunk.to_ndarray().reshape(-1), at), True
                if at >= n_samples:
                    break
            else:
                for chunk in resampler.resample(None):
                    at, decoded = _place(out, chunk.to_ndarray().reshape(-1), at or 0), True
        except (av.error.FFmpegError, IndexError) as exc:
            if not decoded or at is None or at < min(n_samples, int(0.9 * n_samples)):
                raise MediaError(f"the audio stream is corrupt: {exc}") from exc
            # The last packet of a cut file: what decoded covers the picture (the answer names the cut).
    if not decoded:
        raise MediaError("the audio track has no decodable samples")
    return out


def _audio_start(start_s: float, origin_s: float, cfg: PreprocessConfig) -> int:
    """The first audio sample's index on the video's clock, refused past ``max_audio_offset_s``."""
    offset_s = start_s - origin_s
    if abs(offset_s) > cfg.limits.max_audio_offset_s:
        raise MediaError(f"the audio track starts {offset_s:+.1f} s from the first video frame; this server takes "
                         f"at most {cfg.limits.max_audio_offset_s:.0f} s")
    return int(round(offset_s * cfg.audio.sample_rate))


def _place(out: np.ndarray, samples: np.ndarray, at: int) -> int:
    """Copy ``samples`` to ``out[at:]`` (the part that falls inside ``out``); the index after them."""
    lo, hi = max(at, 0), min(at + samples.size, out.size)
    if hi > lo:
        out[lo:hi] = samples[lo - at : hi - at]
    return at + samples.size
