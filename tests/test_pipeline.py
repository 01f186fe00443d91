"""The whole preprocessing path on real mp4 files made by the project's own talking-head code."""

from __future__ import annotations

import numpy as np
import pytest

from avsync.media import encode_mp4
from preprocessing import DEFAULT_CONFIG as CFG
from preprocessing import MediaError, preprocess_video
from preprocessing.audio import frame_loudness_dbfs
from preprocessing.decode import decode_audio, first_frame_time


def test_talking_head_becomes_aligned_windows(talking_mp4: bytes) -> None:
    video = preprocess_video(talking_mp4)
    n = len(video.window_start_s)
    assert video.face_found and n >= 5
    assert video.visual.shape == (n, 3, CFG.clip_frames, CFG.crop_size, CFG.crop_size)
    assert video.audio.shape == (n, 1, CFG.n_mels, CFG.mel_frames)
    assert video.visual.dtype == video.audio.dtype == np.float32
    assert video.window_start_s[-1] + CFG.clip_seconds == pytest.approx(video.duration_s, abs=1e-4)
    assert video.window_speech.max() > 0.9  # the sentence is voiced


def test_mouth_crop_opens_with_the_speech(talking_mp4: bytes) -> None:
    """The crop is on the mouth: the dark opening at its centre grows and shrinks with loudness."""
    video = preprocess_video(talking_mp4)
    whole = [s for s in range(len(video.window_start_s)) if video.window_start_s[s] * CFG.fps % CFG.clip_frames == 0]
    centre = np.concatenate([video.visual[w, :, :, 24:40, 20:44].mean(axis=(0, 2, 3)) for w in whole])
    audio = decode_audio(talking_mp4, CFG, first_frame_time(talking_mp4), len(centre) * CFG.samples_per_frame)
    loudness = frame_loudness_dbfs(audio, CFG)
    assert np.corrcoef(-centre, loudness)[0, 1] > 0.5


def test_no_face_is_reported_not_raised(no_face_mp4: bytes) -> None:
    video = preprocess_video(no_face_mp4)
    assert not video.face_found and video.visual.shape[0] == 0


def test_too_short_video_is_a_clear_error() -> None:
    data = encode_mp4(np.zeros((12, 64, 64, 3), np.uint8), 25, np.zeros(8000, np.float32), CFG.sample_rate)
    with pytest.raises(MediaError, match="at least 1.00 s"):
        preprocess_video(data)


def test_too_long_video_is_refused_not_truncated() -> None:
    seconds = CFG.max_windows + 2
    frames = np.zeros((seconds * 25, 32, 32, 3), np.uint8)
    data = encode_mp4(frames, 25, np.zeros(seconds * CFG.sample_rate, np.float32), CFG.sample_rate)
    with pytest.raises(MediaError, match=f"at most {CFG.max_windows} windows"):
        preprocess_video(data)
