"""Decoding onto the 25 fps timeline by timestamps, audio on the same clock, and upright pixels."""

from __future__ import annotations

import ctypes
import io
import struct
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest

from sync_defense.artifacts import SAMPLE_VIDEO
from sync_defense.offline.synthetic.media import encode_mp4
from sync_defense.preprocessing import DEFAULT_CONFIG, MediaError
from sync_defense.preprocessing.config import HWACCEL_ENV, DecodeConfig
from sync_defense.preprocessing.decode import (
    decode_audio,
    first_frame_time,
    iter_span_frames,
    iter_timeline_frames,
    probe_timeline,
    to_rgb,
    to_small,
)
from sync_defense.preprocessing.scan import scan_faces

SR = DEFAULT_CONFIG.audio.sample_rate
FPS = DEFAULT_CONFIG.timeline.fps
NTSC = Fraction(30000, 1001)  # 29.97 as cameras write it, not a rounded float
SOURCE_RATES = [24, 25, NTSC, 30, 50, 60]
FLASH_S = 0.2  # longer than a timeline frame: a single 50 or 60 fps frame can fall between two samples


def jittered_times(seconds: float, seed: int = 0) -> np.ndarray:
    """Variable frame rate: intervals drawn between 20 and 60 ms, the last one repeated so the end is unambiguous."""
    intervals = np.random.default_rng(seed).uniform(0.02, 0.06, int(seconds / 0.02))
    times = np.concatenate([[0.0], np.cumsum(intervals)])
    times = times[times < seconds]
    return np.append(times, 2 * times[-1] - times[-2])


def flash_and_beep(
    fps: float | Fraction, seconds: float, event_s: float, frame_times_s: np.ndarray | None = None, audio_start_s: float = 0.0
) -> tuple[bytes, float, float]:
    """Dark frames that turn white, and a 1 kHz beep, from the first frame shown at or after ``event_s``.

    Returns the file, the event's true time on the container clock (that frame's presentation time)
    and the video's duration. ``frame_times_s`` (variable frame rate) replaces ``fps`` and ``seconds``;
    the audio track starts ``audio_start_s`` into the container clock.
    """
    vfr = frame_times_s is not None
    times = np.asarray(frame_times_s) if vfr else np.arange(int(round(seconds * fps))) / float(fps)
    duration = times[-1] + (times[-1] - times[-2]) - times[0]
    event = float(times[np.argmax(times >= event_s - 1e-9)])
    frames = np.full((len(times), 64, 64, 3), 20, np.uint8)
    frames[(times >= event) & (times < event + FLASH_S)] = 235
    audio = np.zeros(int((times[0] + duration - audio_start_s) * SR), np.float32)
    start = int(round((event - audio_start_s) * SR))
    audio[start : start + SR // 10] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(SR // 10) / SR)
    data = encode_mp4(frames, fps, audio, SR, crf=10, frame_times_s=times if vfr else None, audio_start_s=audio_start_s)
    return data, event, duration


def flash_and_beep_frames(data: bytes) -> tuple[int, float, int]:
    """The timeline frame where the flash starts, the (fractional) one where the beep starts, and the frame count."""
    brightness = np.array([to_small(frame, 64, "gray")[0].mean() for _, frame in iter_timeline_frames(data, DEFAULT_CONFIG)])
    audio = decode_audio(data, DEFAULT_CONFIG, first_frame_time(data), len(brightness) * DEFAULT_CONFIG.samples_per_frame)
    beep_sample = int(np.argmax(np.abs(audio) > 0.1))
    return int(np.argmax(brightness > 128)), beep_sample / DEFAULT_CONFIG.samples_per_frame, len(brightness)


CLIPS = {
    **{f"{float(fps):.2f}fps": dict(fps=fps, seconds=3.0, event_s=1.23) for fps in SOURCE_RATES},
    "vfr": dict(fps=25, seconds=0.0, event_s=1.23, frame_times_s=jittered_times(3.0)),
    "audio_starts_late": dict(fps=30, seconds=3.0, event_s=1.23, audio_start_s=0.3),
    "video_starts_late": dict(fps=30, seconds=0.0, event_s=1.53, frame_times_s=0.3 + np.arange(90) / 30),
}


@pytest.mark.parametrize("clip", CLIPS.values(), ids=CLIPS.keys())
def test_flash_and_beep_land_on_the_event_frame(clip: dict) -> None:
    """Sync within one frame for every source rate, and no shared offset: both events are where they happened."""
    data, event_s, _ = flash_and_beep(**clip)
    flash_frame, beep_frame, _ = flash_and_beep_frames(data)
    event_frame = (event_s - first_frame_time(data)) * FPS
    assert abs(flash_frame - beep_frame) <= 1.0, (flash_frame, beep_frame)
    assert abs(flash_frame - event_frame) <= 1.0, (flash_frame, event_frame)
    assert abs(beep_frame - event_frame) <= 1.0, (beep_frame, event_frame)


@pytest.mark.parametrize("clip", CLIPS.values(), ids=CLIPS.keys())
def test_timeline_has_model_fps_frames_whatever_the_source_rate(clip: dict) -> None:
    data, _, duration = flash_and_beep(**clip)
    ks = [k for k, _ in iter_timeline_frames(data, DEFAULT_CONFIG)]
    assert ks == list(range(len(ks)))
    assert abs(len(ks) - duration * FPS) <= 1.0, (len(ks), duration * FPS)


def upright_face() -> np.ndarray:
    """A portrait frame ``(96, 64, 3)`` with a bright block in its top-left corner: only one orientation matches."""
    frame = np.full((96, 64, 3), 20, np.uint8)
    frame[8:40, 8:28] = 235
    return frame


def assert_top_left_bright(pixels: np.ndarray) -> None:
    half_h, half_w = pixels.shape[0] // 2, pixels.shape[1] // 2
    quadrants = [pixels[:half_h, :half_w], pixels[:half_h, half_w:], pixels[half_h:, :half_w], pixels[half_h:, half_w:]]
    assert [round(float(q.mean())) > 60 for q in quadrants] == [True, False, False, False]


@pytest.mark.parametrize("rotation", [0, -90, 90, 180])  # -90: a phone held upright (the "rotate=90" tag)
def test_rotated_video_comes_back_upright(rotation: int) -> None:
    upright = upright_face()
    stored = np.repeat(np.rot90(upright, -rotation // 90)[None], 5, axis=0)  # what the camera wrote
    data = encode_mp4(stored, 25, None, SR, rotation=rotation)
    _, frame = next(iter_timeline_frames(data, DEFAULT_CONFIG))
    assert (frame.width, frame.height) == stored.shape[2:0:-1]
    rgb = to_rgb(frame)
    assert rgb.shape == upright.shape
    assert_top_left_bright(rgb)
    gray, scale = to_small(frame, 32, "gray")
    assert gray.shape == (48, 32) and scale == pytest.approx(2.0)
    assert_top_left_bright(gray)


def test_small_frames_are_not_enlarged_for_detection() -> None:
    data = encode_mp4(np.repeat(upright_face()[None], 3, axis=0), 25, None, SR)
    gray, scale = to_small(next(iter_timeline_frames(data, DEFAULT_CONFIG))[1], 320, "gray")
    assert gray.shape == (96, 64) and scale == 1.0


def test_decoded_audio_has_exactly_the_requested_length() -> None:
    data, _, _ = flash_and_beep(25, 2.0, 0.5)
    for n in (100, 32000, 40000):
        assert decode_audio(data, DEFAULT_CONFIG, first_frame_time(data), n).shape == (n,)


def test_garbage_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="cannot read"):
        first_frame_time(b"this is not a video at all" * 100)


def test_empty_upload_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="empty"):
        first_frame_time(b"")


def test_video_without_audio_track_is_a_media_error() -> None:
    data = encode_mp4(np.zeros((30, 64, 64, 3), np.uint8), 25, None, SR)
    with pytest.raises(MediaError, match="no audio track"):
        decode_audio(data, DEFAULT_CONFIG, 0.0, 1000)


@pytest.mark.parametrize("name", ["video_starts_late", "audio_starts_late", "vfr"])
def test_the_face_scan_finds_the_same_origin_the_audio_is_placed_on(name: str) -> None:
    """The pipeline takes the audio's origin from its first video pass instead of decoding the first frame again."""
    data, _, _ = flash_and_beep(**CLIPS[name])
    assert scan_faces(data, DEFAULT_CONFIG).origin_s == pytest.approx(first_frame_time(data), abs=1e-9)


def test_reused_colour_conversion_gives_pyav_s_own_pixels() -> None:
    """``to_rgb``/``to_small`` reuse one libswscale context across frames and sizes: same pixels as PyAV's per-call one."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 96, 128, 3), dtype=np.uint8)
    data = encode_mp4(frames, 25, None, SR)
    for _, frame in iter_timeline_frames(data, DEFAULT_CONFIG):
        small, _ = to_small(frame, 64)
        assert np.array_equal(small, frame.reformat(width=64, height=48, format="rgb24").to_ndarray())
        assert np.array_equal(to_rgb(frame), frame.to_ndarray(format="rgb24"))


LONG = {
    "25fps": np.arange(2000) / 25,
    "29.97fps": np.arange(2400) / float(NTSC),
    "vfr": jittered_times(80.0),
    "video_starts_late": 0.7 + np.arange(2000) / 25,
}


def moving_pattern(n: int) -> np.ndarray:
    """``(n, 64, 64, 3)`` frames that all differ: a colour ramp and two moving lines."""
    frames = np.zeros((n, 64, 64, 3), np.uint8)
    i = np.arange(n)
    frames[..., 0] = ((i * 7) % 256)[:, None, None]
    frames[i, (i // 3) % 64, :, 1] = 255
    frames[i, :, (i * 5) % 64, 2] = 200
    return frames


def encode_video(frames: np.ndarray, container_format: str, codec: str, options: dict[str, str] | None = None,
                 keyframes: tuple[int, ...] = (), audio_s: float = 0.0) -> bytes:
    """A file at 25 fps in another container and codec than ``encode_mp4``'s: the encoder's ``options``,
    ``keyframes`` forced as I-frames, and ``audio_s`` seconds of quiet sound (0: video only)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=25, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = container.add_stream("aac", rate=SR, layout="mono") if audio_s else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if i in keyframes:
                frame.pict_type = av.video.frame.PictureType.I
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = np.full((1, int(audio_s * SR)), 0.01, np.float32)
            for at in range(0, samples.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, at : at + 1024]), format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = SR, at
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return buffer.getvalue()


def assert_spans_match_a_full_decode(data: bytes) -> None:
    full = [to_rgb(frame) for _, frame in iter_timeline_frames(data, DEFAULT_CONFIG)]
    timeline = probe_timeline(data, DEFAULT_CONFIG)
    assert timeline is not None and timeline.n_frames == len(full)
    assert timeline.origin_s == pytest.approx(first_frame_time(data), abs=1e-9)
    spans = [(0, 60), (333, 458), (1210, 1335), (len(full) - 125, len(full))]
    skimmed = list(iter_span_frames(data, DEFAULT_CONFIG, timeline, spans))
    assert [k for k, _ in skimmed] == [k for k0, k1 in spans for k in range(k0, k1)]
    assert all(np.array_equal(to_rgb(frame), full[k]) for k, frame in skimmed)


@pytest.mark.parametrize("times", LONG.values(), ids=LONG.keys())
def test_a_skimmed_video_seeks_to_the_frames_a_full_decode_gives(times: np.ndarray) -> None:
    """A long video's timeline (origin, frame count) probed from its ends, and the frames of a few
    spans reached by seeking — the first, middle ones off keyframes, the last — are a full decode's."""
    data = encode_mp4(moving_pattern(len(times)), 25, np.zeros(int((times[-1] + 1) * SR), np.float32), SR, frame_times_s=times)
    assert_spans_match_a_full_decode(data)


CONTAINERS = {"webm": ("webm", "libvpx-vp9"), "mov": ("mov", "libx264"), "mkv": ("matroska", "libx264"), "avi": ("avi", "mpeg4")}


@pytest.mark.parametrize("container", CONTAINERS.values(), ids=CONTAINERS.keys())
def test_skimming_lands_on_the_same_frames_in_every_container_users_send(container: tuple[str, str]) -> None:
    assert_spans_match_a_full_decode(encode_video(moving_pattern(2000), *container))


def test_a_program_stream_is_decoded_whole_not_skimmed() -> None:
    """MPEG-PS frames came out half a frame off after a seek (``SEEKABLE_FORMATS``): such files are not skimmed."""
    assert probe_timeline(encode_video(moving_pattern(2000), "mpeg", "mpeg2video"), DEFAULT_CONFIG) is None


def test_a_tail_of_one_frame_holds_it_one_frame_interval() -> None:
    """Every frame a keyframe and the sound 5 s longer (the end the container declares): the tail seek lands
    on the last frame alone, which is held one frame interval, not from the first frame to it."""
    data = encode_video(moving_pattern(500), "matroska", "libx264", {"g": "1"}, audio_s=25.0)
    timeline = probe_timeline(data, DEFAULT_CONFIG)
    assert timeline is not None and timeline.n_frames == sum(1 for _ in iter_timeline_frames(data, DEFAULT_CONFIG)) == 500


def test_sparse_keyframes_are_decoded_whole_not_skimmed() -> None:
    """Keyframes only at the start and near the end: every seek in between would decode from the start."""
    pattern = moving_pattern(1500)
    data = encode_video(pattern, "mp4", "libx264", {"x264-params": "keyint=infinite:scenecut=0"}, keyframes=(1400,))
    assert probe_timeline(data, DEFAULT_CONFIG) is None
    assert probe_timeline(encode_video(pattern, "mp4", "libx264", {"g": "250"}), DEFAULT_CONFIG) is not None


def _mp4_boxes(data: bytes, edit: Callable[[tuple[bytes, ...], bytes], bytes], path: tuple[bytes, ...] = ()) -> bytes:
    """``data``'s ISO-BMFF boxes rebuilt with ``edit(path, body)`` applied to every leaf box."""
    out, at = b"", 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + size]
        body = _mp4_boxes(body, edit, (*path, kind)) if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl") else edit((*path, kind), body)
        out, at = out + struct.pack(">I4s", len(body) + 8, kind) + body, at + size
    return out


def test_a_file_that_refuses_seeks_is_decoded_whole_not_failed() -> None:
    """An index whose first keyframe entry is missing: libavformat refuses seeks before the next one
    (EPERM). Such a file decodes from the start, so it is analysed whole, not answered with an error."""
    def without_first_keyframe(path: tuple[bytes, ...], body: bytes) -> bytes:
        if path[-1] != b"stss":
            return body
        version, count = struct.unpack(">II", body[:8])
        return struct.pack(">II", version, count - 1) + body[12 : 8 + 4 * count]

    data = encode_video(moving_pattern(1000), "mp4", "libx264", {"g": "250"})
    moov = data.index(b"moov") - 4  # written after the media data: rebuilding it moves no sample
    broken = data[:moov] + _mp4_boxes(data[moov:], without_first_keyframe)
    assert probe_timeline(data, DEFAULT_CONFIG) is not None
    assert probe_timeline(broken, DEFAULT_CONFIG) is None
    assert sum(1 for _ in iter_timeline_frames(broken, DEFAULT_CONFIG)) == 1000


def _nvidia_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


CUDA = replace(DEFAULT_CONFIG, decode=DecodeConfig("cuda"))


@pytest.fixture()
def opened(monkeypatch) -> list[dict]:
    """The keyword arguments of every ``av.open`` from here on."""
    calls: list[dict] = []
    real_open = av.open

    def recording_open(*args, **kwargs):
        calls.append(kwargs)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", recording_open)
    return calls


def test_video_is_decoded_on_the_cpu_unless_hardware_decoding_is_asked_for(opened: list[dict], monkeypatch) -> None:
    assert DEFAULT_CONFIG.decode.hwaccel == ""
    assert first_frame_time(SAMPLE_VIDEO.read_bytes(), DEFAULT_CONFIG) == 0.0
    assert opened and all(call.get("hwaccel") is None for call in opened)
    monkeypatch.setenv(HWACCEL_ENV, "cuda")  # how a GPU node opts in: read when the config is made
    assert DecodeConfig().hwaccel == "cuda"
    monkeypatch.setenv(HWACCEL_ENV, "vaapi")
    with pytest.raises(ValueError, match="must be one of"):
        DecodeConfig()


def test_cuda_decoding_gives_the_cpu_timeline_or_a_clear_error_never_a_silent_cpu_decode(opened: list[dict]) -> None:
    """With a GPU and its driver, NVDEC gives the CPU's timeline and pixels; without one, the upload is refused
    before anything is decoded (a node configured for NVDEC never decodes on its cores unnoticed)."""
    data = SAMPLE_VIDEO.read_bytes()
    if not _nvidia_driver():
        with pytest.raises(RuntimeError, match="cannot open a cuda device.*leave it empty to decode on the CPU"):
            first_frame_time(data, CUDA)
        assert opened == []
        return
    cpu = [(k, frame.time, to_rgb(frame)) for k, frame in iter_timeline_frames(data, DEFAULT_CONFIG)]
    gpu = [(k, frame.time, to_rgb(frame)) for k, frame in iter_timeline_frames(data, CUDA)]
    assert [(k, t) for k, t, _ in gpu] == [(k, t) for k, t, _ in cpu]
    difference = max(int(np.abs(a.astype(np.int16) - b).max()) for (_, _, a), (_, _, b) in zip(cpu, gpu, strict=True))
    assert difference <= 2  # H.264 decodes bit-exactly; only NV12 -> RGB may round differently from YUV 4:2:0
