"""Every upload limit (``LimitsConfig``) refuses before the memory or CPU it guards is spent, and the
answers stay truthful: hostile files through the decoder, then through the real server."""

from __future__ import annotations

import io
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sync_defense.client import DetectionError, SyncDefenseClient
from sync_defense.offline.synthetic import scenes
from sync_defense.offline.synthetic.media import encode_mp4
from sync_defense.preprocessing import DEFAULT_CONFIG, MediaError
from sync_defense.preprocessing.decode import first_frame_time, iter_timeline_frames, wall_clock_budget

SR = DEFAULT_CONFIG.audio.sample_rate
FPS = DEFAULT_CONFIG.timeline.fps


def limited(**limits: float) -> object:
    return replace(DEFAULT_CONFIG, limits=replace(DEFAULT_CONFIG.limits, **limits))


def sparse_mkv(times_s: list[float], size: tuple[int, int] = (320, 240), codec: str = "libx264") -> bytes:
    """A few grey frames at the given presentation times (a 40 kB file can claim minutes), with a 1-s tone."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        video = out.add_stream(codec, rate=25)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        sound = out.add_stream("aac", rate=SR, layout="mono")
        for t in times_s:
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 128, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = (0.1 * np.sin(np.arange(SR) * 2 * np.pi * 440 / SR)).astype(np.float32)[None]
        for i in range(0, SR, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i : i + 1024]), format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = SR, i
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return buffer.getvalue()


def faststart_cut(data: bytes, fraction: float, work: Path) -> bytes:
    """``data`` remuxed with its index first (as streaming sites serve mp4) and then cut: the header still
    declares the whole duration, the frames stop early. (faststart rewrites a file: ``work`` is a folder.)"""
    target = work / "faststart.mp4"
    with av.open(io.BytesIO(data)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    whole = target.read_bytes()
    return whole[: int(len(whole) * fraction)]


# --- the decoder, with each limit set low ----------------------------------------------------------


def test_upload_bytes_are_checked_before_the_container_is_parsed(talking_mp4: bytes) -> None:
    with pytest.raises(MediaError, match="the upload is .* bytes; this server takes at most 1000"):
        first_frame_time(talking_mp4, limited(max_upload_bytes=1000))


def test_declared_duration_and_frame_count_are_refused_from_the_header(talking_mp4: bytes) -> None:
    with pytest.raises(MediaError, match="the file declares 7 s; this server takes at most 5 s"):
        first_frame_time(talking_mp4, limited(max_duration_s=5.0))
    with pytest.raises(MediaError, match="declares 16. frames; this server takes at most 100"):
        first_frame_time(talking_mp4, limited(max_video_frames=100))


def test_frame_size_is_refused_from_the_header(talking_mp4: bytes) -> None:
    with pytest.raises(MediaError, match="frames of 320x240 pixels; this server takes at most 10000 pixels"):
        first_frame_time(talking_mp4, limited(max_frame_pixels=10_000))


def test_a_gap_between_frames_is_refused_at_the_frame_after_it() -> None:
    data = sparse_mkv([0.0, 0.04, 300.0])
    assert len(data) < 40_000
    with pytest.raises(MediaError, match=r"no video frame for 300.0 s \(from 0.0 s\)"):
        list(iter_timeline_frames(data, DEFAULT_CONFIG))


def test_the_last_frame_is_held_one_frame_interval_not_the_gap_before_it() -> None:
    """Frames every 40 ms for 2 s, then one at 4 s: the timeline ends at 4.04 s, not 6 s."""
    times = [*np.arange(50) * 0.04, 4.0]
    data = encode_mp4(np.full((len(times), 64, 64, 3), 90, np.uint8), 25, None, SR, frame_times_s=times)
    assert sum(1 for _ in iter_timeline_frames(data, DEFAULT_CONFIG)) == 101


def test_the_wall_clock_budget_stops_decoding(talking_mp4: bytes) -> None:
    with wall_clock_budget(0.0), pytest.raises(MediaError, match="needs more than 0 s to analyse"):
        list(iter_timeline_frames(talking_mp4, DEFAULT_CONFIG))


def test_short_clips_follow_the_trackers_rule() -> None:
    with pytest.raises(ValueError, match="at least faces.track_min_seconds"):
        limited(min_duration_s=1.0)


# --- the files through the real server -----------------------------------------------------


def client(triton) -> SyncDefenseClient:
    return SyncDefenseClient(f"127.0.0.1:{triton.grpc_port}", retry=False, timeout_s=120)


@pytest.mark.parametrize("times, reason", [
    ([0.0, 300.0], r"no video frame for 300.0 s"),  # took 37 s and answered fake for 600 s before
    ([0.0, 3000.0], r"no video frame for 3000.0 s"),  # 7-11 min of CPU after the client gave up
    ([0.0, 4000.0], r"the file declares 4000 s; this server takes at most 3600 s"),
])
def test_timestamp_tricks_are_refused(triton, times: list[float], reason: str) -> None:
    with pytest.raises(DetectionError, match=reason):
        client(triton).detect(sparse_mkv(times))


def test_huge_frames_are_refused_before_decoding(triton) -> None:
    data = sparse_mkv([0.0, 0.04], size=(4000, 2400), codec="ffv1")  # lossless, as PNG frames were
    with pytest.raises(DetectionError, match="frames of 4000x2400 pixels; this server takes at most 8294400"):
        client(triton).detect(data)


@pytest.mark.parametrize("start_s, reason", [
    (60.0, r"the audio track starts \+(59.9|60.0) s from the first video frame; this server takes at most 30 s"),
    (20000.0, r"the file declares 2000\d s"),  # allocated 1.3 GiB of silence before
])
def test_late_audio_is_refused_without_allocating_silence(triton, sentence_audio: np.ndarray, start_s: float,
                                                          reason: str) -> None:
    frames = scenes.talking_video(sentence_audio)
    data = encode_mp4(frames, FPS, sentence_audio[: len(frames) * SR // FPS], SR, audio_start_s=start_s)
    with pytest.raises(DetectionError, match=reason):
        client(triton).detect(data)


def test_a_clip_shorter_than_a_face_track_is_refused_not_no_face(triton, sentence_audio: np.ndarray) -> None:
    audio = sentence_audio[: int(1.5 * SR)]
    with pytest.raises(DetectionError, match=r"the video lasts 1.\d\d s; at least 2.00 s is needed"):
        client(triton).detect(scenes.mp4(scenes.talking_video(audio), audio))


def test_a_truncated_file_is_named_as_such(triton, talking_mp4: bytes, tmp_path: Path) -> None:
    answer = client(triton).detect(faststart_cut(talking_mp4, 0.5, tmp_path))
    assert any(w.startswith("truncated: only") for w in answer.warnings), answer.warnings
    assert answer.duration_s < 5.0


def test_a_still_photo_with_a_voice_is_not_fake(triton, sentence_audio: np.ndarray) -> None:
    """Nobody on screen speaks: lip sync cannot be judged (it answered fake 0.99, confidence 0.97)."""
    frames = scenes.talking_video(np.zeros_like(sentence_audio))[:1]
    still = np.repeat(frames, scenes.n_frames(sentence_audio, FPS), axis=0)
    answer = client(triton).detect(scenes.mp4(still, sentence_audio))
    assert answer.verdict == "uncertain" and answer.confidence == 0.0
    assert any("no face on screen moves its mouth" in w for w in answer.warnings)
    assert [f.speaking for f in answer.faces] == [False]
