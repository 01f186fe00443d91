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

``cfg.decode.hwaccel = "cuda"`` (opt-in) decodes video on the GPU's NVDEC through PyAV's ``HWAccel`` (the
PyAV wheels' FFmpeg is built with ``--enable-nvdec``); frames are copied back to memory, so all of the above holds.
"""

from __future__ import annotations

import io
import itertools
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

import av
import numpy as np
from av.codec.hwaccel import HWAccel
from av.video.reformatter import VideoReformatter

from .config import DEFAULT_CONFIG, HWACCEL_ENV, LimitsConfig, PreprocessConfig

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


@cache
def hardware_decoder(device_type: str) -> HWAccel:
    """PyAV's settings to decode on ``device_type``, once a device of that type has opened in this process.

    PyAV opens the device when it opens a container and raises an ``FFmpegError`` there (EPERM without a
    driver), which would read as a broken upload: the device is tried here first, and a node that has none
    fails loudly rather than decoding on the CPU unnoticed. CUDA uses the GPU's primary context, shared with
    everything else in the process, instead of a new context on each of an upload's several opens.
    """
    hwaccel = HWAccel(device_type, options={"primary_ctx": "1"} if device_type == "cuda" else None)
    try:
        hwaccel.create(av.Codec("h264", "r"))  # what opening an H.264 stream does
    except (av.error.FFmpegError, NotImplementedError) as exc:
        raise RuntimeError(f"decoding on {device_type} was asked for (decode.hwaccel, {HWACCEL_ENV}) but FFmpeg cannot "
                           f"open a {device_type} device here ({exc}); leave it empty to decode on the CPU") from exc
    return hwaccel


def _open(data: bytes, cfg: PreprocessConfig) -> av.container.InputContainer:
    if not data:
        raise MediaError("empty upload: expected a video file (mp4, webm, mov, avi)")
    if len(data) > cfg.limits.max_upload_bytes:
        raise MediaError(f"the upload is {len(data)} bytes; this server takes at most {cfg.limits.max_upload_bytes}")
    hwaccel = hardware_decoder(cfg.decode.hwaccel) if cfg.decode.hwaccel else None
    try:
        container = av.open(io.BytesIO(data), mode="r", hwaccel=hwaccel)
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


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError("the upload has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _timed_frames(data: bytes, cfg: PreprocessConfig) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded video frames with their presentation time in seconds, in display order, within the limits."""
    with _open(data, cfg) as container:
        yield from _checked_frames(container, _video_stream(container), cfg.limits)


def _checked_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    limits: LimitsConfig) -> Iterator[tuple[float, av.VideoFrame]]:
    """``(time, frame)`` from where the container stands (its start, or a seek) to its end, within the limits."""
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
    end = previous[0] - origin + _frame_step(shortest_gap, cfg)  # the last frame stays on screen one frame interval
    while k / cfg.timeline.fps < end - _EPS_S:
        yield k, previous[1]
        k += 1


def _frame_step(shortest_gap: float, cfg: PreprocessConfig) -> float:
    """How long the last frame stays on screen: the video's shortest frame interval (one frame: the nominal one)."""
    return shortest_gap if np.isfinite(shortest_gap) else 1.0 / cfg.timeline.fps


def _frames_before(end_s: float, cfg: PreprocessConfig) -> int:
    """Timeline frames that start before ``end_s`` seconds from the origin (as ``iter_timeline_frames`` counts them)."""
    k = max(0, int(end_s * cfg.timeline.fps) - 1)
    while k / cfg.timeline.fps < end_s - _EPS_S:
        k += 1
    return k


# --- long videos: only the sampled stretches are decoded ----------------------------------------------

SEEK_TAIL_S = 3.0  # the end of the video is found by decoding from a keyframe this far before the declared end
# Containers whose index stamps every frame, so that a seek lands on the timestamps a decode from the
# start gives. MPEG program streams stamp only some packets and the decoder interpolates the rest from
# where it started: after a seek, frames came out half a frame off (one timeline frame held wrongly).
SEEKABLE_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
MAX_SEEK_LEAD_S = 20.0  # a seek landing further before its target (sparse keyframes) is not worth it: decode it all
SEEK_CHECKS = (0.0, 0.25, 0.5, 0.75)  # where in the video (share of its length) seeking is tried before it is trusted


@dataclass(frozen=True)
class Timeline:
    """The model's timeline of an upload: where it starts on the container clock and how many frames it has."""

    origin_s: float
    n_frames: int


def probe_timeline(data: bytes, cfg: PreprocessConfig) -> Timeline | None:
    """The timeline from its first frame and its last few seconds only, for a long video that is skimmed.

    None where seeking cannot be trusted to land on a full decode's frames or to skip anything: a
    container outside ``SEEKABLE_FORMATS``, a video stream that declares no duration, a seek the file
    refuses, or keyframes more than ``MAX_SEEK_LEAD_S`` apart at the start, a quarter, half and three
    quarters of the way (``SEEK_CHECKS``) or at the end. The last frame is held for the tail's shortest frame interval
    (``iter_timeline_frames`` takes the whole video's: the same at a constant rate).
    """
    with _open(data, cfg) as container:
        stream = _video_stream(container)
        declared = _declared_video_seconds(stream) or declared_duration(container)
        if declared is None or container.format.name not in SEEKABLE_FORMATS:
            return None
        origin = next(_checked_frames(container, stream, cfg.limits), (None, None))[0]
        if origin is None:
            raise MediaError("the video stream has no decodable frames")
        # Seeks that cannot land, or land far back, make skimming cost more than a full decode; the last
        # one, a few seconds before the declared end, also finds the real end.
        for target_s in [origin + fraction * declared for fraction in SEEK_CHECKS] + [origin + declared - SEEK_TAIL_S]:
            landed = _seek(container, stream, target_s, cfg.limits)
            if landed is None or landed[0] > MAX_SEEK_LEAD_S:
                return None
        shortest_gap, last = np.inf, None
        for time_s, _ in landed[1]:  # gaps between the tail's own frames (one frame alone: the nominal interval)
            if last is not None and time_s - last > _EPS_S:
                shortest_gap = min(shortest_gap, time_s - last)
            last = time_s if last is None else max(last, time_s)
    return Timeline(origin, _frames_before(last - origin + _frame_step(shortest_gap, cfg), cfg))


def _declared_video_seconds(stream: av.video.stream.VideoStream) -> float | None:
    return float(stream.duration * stream.time_base) if stream.duration and stream.duration > 0 else None


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, target_s: float,
          limits: LimitsConfig) -> tuple[float, Iterator[tuple[float, av.VideoFrame]]] | None:
    """The decoder put on a keyframe at or before ``target_s`` (container clock): how far before it,
    and the frames from there (the first one included); None if no try lands at or before it.

    The first frame out of the decoder is checked, and the seek repeated further back if it is
    late: demuxers seek to the nearest index entry, which is not always at or before the target.
    """
    for lead_s in (0.0, SEEK_TAIL_S, MAX_SEEK_LEAD_S):
        if not _seek_to(container, stream, max(0.0, target_s - lead_s)):
            continue
        frames = _checked_frames(container, stream, limits)
        first = next(frames, None)
        if first is not None and first[0] <= target_s + _EPS_S:
            return target_s - first[0], itertools.chain([first], frames)
    return None


def _seek_to(container: av.container.InputContainer, stream: av.video.stream.VideoStream, target_s: float) -> bool:
    """Put the demuxer on the keyframe at or before ``target_s``; False where the file refuses (a broken
    or missing index: libavformat answers EPERM before the first keyframe it knows of)."""
    try:
        container.seek(int(target_s / stream.time_base), stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        return False
    return True


def iter_span_frames(data: bytes, cfg: PreprocessConfig, timeline: Timeline,
                     spans: list[tuple[int, int]]) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(k, frame)`` for the timeline frames ``k0 <= k < k1`` of each span (sorted, disjoint), seeking to each.

    Each frame is the one ``iter_timeline_frames`` gives for the same ``k`` (sample-and-hold by pts
    from ``timeline.origin_s``): decoding starts at the keyframe before the span and runs to its end.
    """
    fps = cfg.timeline.fps
    with _open(data, cfg) as container:
        stream = _video_stream(container)
        for k0, k1 in spans:
            landed = _seek(container, stream, timeline.origin_s + k0 / fps, cfg.limits)
            if landed is None and not _seek_to(container, stream, 0.0):  # else from the start: slow, never wrong
                raise MediaError("the video stream cannot be read back from its start (a broken index)")
            k, previous = k0, None
            for time_s, frame in landed[1] if landed else _checked_frames(container, stream, cfg.limits):
                while k < k1 and k / fps < time_s - timeline.origin_s - _EPS_S:
                    yield k, previous
                    k += 1
                if k >= k1:
                    break
                previous = frame
            while k < k1 and previous is not None:  # the end of the video: its last frame is held
                yield k, previous
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


def iter_keyframes(data: bytes, cfg: PreprocessConfig, timeline: Timeline, targets: list[int]) -> Iterator[tuple[int, av.VideoFrame]]:
    """The keyframe at or before each target timeline frame, decoded alone: a cheap look at a long
    video every so often. Yields ``(k, frame)`` with ``k`` the timeline frame where that keyframe shows."""
    fps = cfg.timeline.fps
    with _open(data, cfg) as container:
        stream = _video_stream(container)
        for target in targets:
            if not _seek_to(container, stream, timeline.origin_s + target / fps):
                continue  # one look fewer
            time_s, frame = next(_checked_frames(container, stream, cfg.limits), (None, None))
            if frame is not None:
                yield min(timeline.n_frames - 1, max(0, math.ceil((time_s - timeline.origin_s - _EPS_S) * fps))), frame
