"""Decoding onto the 25 fps timeline by timestamps, and audio on the same clock."""

from __future__ import annotations

import numpy as np
import pytest

from avsync.media import encode_mp4
from preprocessing import DEFAULT_CONFIG, MediaError
from preprocessing.decode import decode_audio, first_frame_time, iter_timeline_frames

SR = DEFAULT_CONFIG.sample_rate


def flash_and_beep(fps: float, seconds: float, event_s: float) -> bytes:
    """Dark frames with one white frame and a 1 kHz beep starting at ``event_s``."""
    n = int(round(seconds * fps))
    frames = np.full((n, 64, 64, 3), 20, np.uint8)
    frames[int(round(event_s * fps))] = 235
    audio = np.zeros(int(seconds * SR), np.float32)
    start = int(event_s * SR)
    audio[start : start + SR // 10] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(SR // 10) / SR)
    return encode_mp4(frames, fps, audio, SR, crf=10)


@pytest.mark.parametrize("fps", [25, 30, 50])
def test_timeline_has_model_fps_frames_whatever_the_source_rate(fps: int) -> None:
    data = flash_and_beep(fps, 2.0, 1.0)
    ks = [k for k, _ in iter_timeline_frames(data, DEFAULT_CONFIG)]
    assert ks == list(range(50))


@pytest.mark.parametrize("fps", [25, 30])
def test_flash_and_beep_land_on_the_same_timeline_frame(fps: int) -> None:
    data = flash_and_beep(fps, 3.0, 1.2)
    brightness = np.array([f.to_ndarray(format="gray").mean() for _, f in iter_timeline_frames(data, DEFAULT_CONFIG)])
    flash_frame = int(np.argmax(brightness))
    audio = decode_audio(data, DEFAULT_CONFIG, first_frame_time(data), len(brightness) * DEFAULT_CONFIG.samples_per_frame)
    beep_sample = int(np.argmax(np.abs(audio) > 0.1))
    beep_frame = beep_sample / DEFAULT_CONFIG.samples_per_frame
    assert abs(flash_frame - beep_frame) <= 1.0, (flash_frame, beep_frame)


def test_decoded_audio_has_exactly_the_requested_length() -> None:
    data = flash_and_beep(25, 2.0, 0.5)
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
