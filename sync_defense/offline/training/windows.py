"""Labelled training and evaluation windows from corpus clips, cut with the serving window code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sync_defense.preprocessing import DEFAULT_CONFIG, PreprocessConfig
from sync_defense.preprocessing.clips import ClipFeatures
from sync_defense.preprocessing.windows import audio_windows, normalise_crops, speech_fraction, window_starts

FAKE_OVERLAP = 0.4  # a window is fake when at least this share of its frames is manipulated


@dataclass(frozen=True)
class CorpusClip:
    record: dict  # the manifest row
    features: ClipFeatures

    @property
    def n_frames(self) -> int:
        return self.features.n_frames


def load_corpus(root: Path, split: str) -> list[CorpusClip]:
    """Every clip of ``split`` with its preprocessed features, in manifest order."""
    clips = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["split"] != split or not record["features"]:
            continue  # another split, or a clip in which no face was found
        with np.load(root / record["features"]) as f:
            crops, mel, speech = f["crops"], f["mel"], f["speech"]
        clips.append(CorpusClip(record, ClipFeatures(crops, mel, speech, len(crops))))
    return clips


def manipulated_share(record: dict, start: int, cfg: PreprocessConfig = DEFAULT_CONFIG) -> float:
    """Share of the window's frames (timeline frames ``start .. start+T``) inside the fake stretch."""
    times = (start + np.arange(cfg.timeline.clip_frames)) / cfg.timeline.fps
    inside = np.zeros(cfg.timeline.clip_frames, bool)
    for begin, end in record["fake_periods"]:
        inside |= (times >= begin) & (times < end)
    return float(inside.mean())


def window_label(record: dict, start: int, cfg: PreprocessConfig = DEFAULT_CONFIG) -> int | None:
    """1 fake, 0 real, ``None`` for a window that only grazes a manipulated stretch (no clear label)."""
    share = manipulated_share(record, start, cfg)
    if share >= FAKE_OVERLAP:
        return 1
    return 0 if share == 0 else None


def visual_window(clip: CorpusClip, start: int, cfg: PreprocessConfig = DEFAULT_CONFIG) -> np.ndarray:
    """``(3, T, H, W)``: the same normalisation and layout the server feeds the visual encoder."""
    return normalise_crops(clip.features.crops[start : start + cfg.timeline.clip_frames], cfg)


def audio_window(clip: CorpusClip, start: int, cfg: PreprocessConfig = DEFAULT_CONFIG) -> np.ndarray:
    """``(1, F, T_mel)`` float32 (``audio_windows`` casts the slice, not the whole stored clip)."""
    return audio_windows(clip.features.mel, np.array([start]), cfg)[0]


def window_speech(clip: CorpusClip, start: int, cfg: PreprocessConfig = DEFAULT_CONFIG) -> float:
    return float(speech_fraction(clip.features.speech, np.array([start]), cfg)[0])


@dataclass(frozen=True)
class EvalWindows:
    """The served windows of every clip, with labels (``-1`` where a window has no clear label)."""

    visual: np.ndarray
    audio: np.ndarray
    labels: np.ndarray
    speech: np.ndarray
    clip_index: np.ndarray  # row -> position of its clip in the list
    start_s: np.ndarray

    @property
    def judged(self) -> np.ndarray:
        """Rows that count in window metrics: a clear label and enough speech to vote in the decision."""
        return (self.labels >= 0) & (self.speech >= DEFAULT_CONFIG.speech.min_window_fraction)


def served_windows(clips: list[CorpusClip], cfg: PreprocessConfig = DEFAULT_CONFIG) -> EvalWindows:
    """Windows exactly where the server cuts them (``window_starts``)."""
    rows = []
    for i, clip in enumerate(clips):
        for start in window_starts(clip.n_frames, cfg):
            label = window_label(clip.record, int(start), cfg)
            rows.append((
                visual_window(clip, start, cfg), audio_window(clip, start, cfg), -1 if label is None else label,
                window_speech(clip, start, cfg), i, start / cfg.timeline.fps,
            ))
    visual, audio, labels, speech, index, start_s = zip(*rows, strict=True)
    return EvalWindows(np.stack(visual), np.stack(audio), np.array(labels), np.array(speech, np.float32), np.array(index),
                       np.array(start_s, np.float32))
