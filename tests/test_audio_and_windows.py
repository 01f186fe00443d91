"""Log-mel layout and window cutting: audio and video windows cover the same instants."""

from __future__ import annotations

from dataclasses import replace

import librosa
import numpy as np

from sync_defense.preprocessing import DEFAULT_CONFIG as CFG
from sync_defense.preprocessing.audio import log_mel
from sync_defense.preprocessing.windows import audio_windows, normalise_crops, speech_fraction, window_starts


def test_log_mel_has_four_frames_per_video_frame() -> None:
    n_frames = 50
    mel = log_mel(np.zeros(n_frames * CFG.samples_per_frame, np.float32), CFG)
    assert mel.shape == (CFG.audio.n_mels, 4 * n_frames + 1)


def test_a_tone_lights_the_mel_band_of_its_frequency() -> None:
    t = np.arange(CFG.audio.sample_rate) / CFG.audio.sample_rate
    mel = log_mel((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), CFG)
    centres = librosa.mel_frequencies(CFG.audio.n_mels + 2, fmin=CFG.audio.fmin, fmax=CFG.audio.fmax)[1:-1]
    assert abs(centres[int(np.argmax(mel[:, 50]))] - 1000) < 100


def test_tone_onset_is_at_the_matching_mel_frame() -> None:
    audio = np.zeros(2 * CFG.audio.sample_rate, np.float32)
    onset_frame = 30  # video frame 30 = 1.2 s
    start = onset_frame * CFG.samples_per_frame
    audio[start:] = 0.3 * np.sin(2 * np.pi * 500 * np.arange(audio.size - start) / CFG.audio.sample_rate)
    energy = log_mel(audio, CFG).mean(axis=0)
    first_loud = int(np.argmax(energy > energy.min() + 0.5 * (energy.max() - energy.min())))
    assert abs(first_loud - onset_frame * CFG.mels_per_frame) <= 1


def test_windows_cover_every_frame_with_a_tail_window_aligned_to_the_end() -> None:
    starts = window_starts(132, CFG)
    assert list(starts) == [0, 25, 50, 75, 100, 107]
    covered = np.zeros(132, bool)
    for s in starts:
        covered[s : s + CFG.timeline.clip_frames] = True
    assert covered.all()


def test_shorter_than_a_window_gives_no_window() -> None:
    assert window_starts(CFG.timeline.clip_frames - 1, CFG).size == 0


def test_overlapping_stride() -> None:
    assert list(window_starts(60, replace(CFG, timeline=replace(CFG.timeline, window_stride_frames=10)))) == [0, 10, 20, 30, 35]


def test_audio_window_is_the_exact_slice_of_its_video_frames() -> None:
    n = 80
    mel = np.arange(CFG.audio.n_mels * (4 * n + 1), dtype=np.float32).reshape(CFG.audio.n_mels, -1)
    starts = np.array([0, 30, 55])
    windows = audio_windows(mel, starts, CFG)
    assert windows.shape == (3, 1, CFG.audio.n_mels, CFG.mel_frames)
    assert np.array_equal(windows[1, 0], mel[:, 120:220])


def test_mouth_windows_layout_and_normalisation() -> None:
    crops = np.full((2, CFG.timeline.clip_frames, CFG.mouth.crop_size, CFG.mouth.crop_size, 3), 255, np.uint8)
    crops[..., 0] = 0
    windows = normalise_crops(crops, CFG)
    assert windows.shape == (2, 3, CFG.timeline.clip_frames, CFG.mouth.crop_size, CFG.mouth.crop_size) and windows.dtype == np.float32
    assert np.allclose(windows[:, 0], (0 - CFG.mouth.pixel_mean) / CFG.mouth.pixel_std)
    assert np.allclose(windows[:, 1], (1 - CFG.mouth.pixel_mean) / CFG.mouth.pixel_std)
    assert np.array_equal(normalise_crops(crops[1], CFG), windows[1])  # one window alone: the same layout


def test_speech_fraction_of_each_window() -> None:
    speech = np.zeros(50, bool)
    speech[:10] = True
    assert np.allclose(speech_fraction(speech, np.array([0, 25]), CFG), [0.4, 0.0])
