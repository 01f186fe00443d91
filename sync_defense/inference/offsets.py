"""The audio-video offset search (SyncNet-style), planned, scored and read back in one place.

Plan: every window is scored with its own audio (shift 0); on each face's ``windows`` most voiced
windows the audio is also slid by every shift up to ``max_frames`` either way. Score: each mouth
window and each distinct audio window is encoded once, however many pairs share it
(``AudioPlan``). Read back: the shift whose pairs look most in sync is the face's offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OffsetSearchConfig:
    max_frames: int = 15  # the audio is slid by up to this many frames either way
    windows: int = 4  # per face: its most voiced windows are searched; each costs 2 * max_frames audio windows


DEFAULT_SEARCH = OffsetSearchConfig()


def search_shifts(start: int, n_frames: int, clip_frames: int, cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> np.ndarray:
    """The shifts (frames, not 0) for a window at ``start`` that keep the shifted audio inside the video."""
    shifts = np.arange(-cfg.max_frames, cfg.max_frames + 1)
    shifts = shifts[shifts != 0]
    return shifts[(start + shifts >= 0) & (start + shifts <= n_frames - clip_frames)]


@dataclass(frozen=True)
class PairPlan:
    """The pairs ``(mouth window, audio shift)`` to score for one upload."""

    window: np.ndarray  # (K,) int32 row of the mouth windows
    shift: np.ndarray  # (K,) int32 audio shift in frames: the audio window starts at the mouth's start + shift


def plan_pairs(window_start: np.ndarray, window_track: np.ndarray, window_speech: np.ndarray, n_frames: int,
               clip_frames: int, min_speech: float, cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> PairPlan:
    """Every window at shift 0, then each face's ``cfg.windows`` most voiced windows at every shift."""
    rows, shifts = [np.arange(len(window_start))], [np.zeros(len(window_start), np.int64)]
    for track in np.unique(window_track):
        mine = np.flatnonzero((window_track == track) & (window_speech >= min_speech))
        for row in mine[np.argsort(-window_speech[mine], kind="stable")][: cfg.windows]:
            extra = search_shifts(int(window_start[row]), n_frames, clip_frames, cfg)
            rows.append(np.full(len(extra), row))
            shifts.append(extra)
    return PairPlan(np.concatenate(rows).astype(np.int32), np.concatenate(shifts).astype(np.int32))


@dataclass(frozen=True)
class AudioPlan:
    """The distinct audio windows the pairs need, and which one each pair reads."""

    starts: np.ndarray  # (A,) first timeline frame of each distinct audio window, sorted
    row: np.ndarray  # (K,) index into ``starts`` for each pair


def audio_plan(window_start: np.ndarray, pair_window: np.ndarray, pair_shift: np.ndarray) -> AudioPlan:
    starts, row = np.unique(window_start[pair_window].astype(np.int64) + pair_shift, return_inverse=True)
    return AudioPlan(starts, row.reshape(-1))


@dataclass(frozen=True)
class Offset:
    frames: int | None  # > 0: the audio comes that many frames after the mouth; None: outside the search
    confidence: float  # median minus minimum of the mean probability over shifts (SyncNet's measure)
    curve: dict[int, float]  # mean fake probability at each searched shift


def estimate_offset(rows: np.ndarray, pair_window: np.ndarray, pair_shift: np.ndarray, pair_probability: np.ndarray,
                    cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> Offset | None:
    """The shift under which the searched windows among ``rows`` look most in sync.

    A best shift on the edge of the search says the true offset may lie beyond it: it is reported
    as unknown (``frames`` None) rather than as the edge.
    """
    searched = np.unique(pair_window[np.isin(pair_window, rows) & (pair_shift != 0)])
    if not searched.size:
        return None
    mine = np.isin(pair_window, searched)
    shifts = np.unique(pair_shift[mine])
    curve = np.array([pair_probability[mine & (pair_shift == s)].mean() for s in shifts])
    best = int(np.argmin(curve))
    frames = int(shifts[best])
    on_edge = abs(frames) >= cfg.max_frames
    return Offset(None if on_edge else frames, float(np.median(curve) - curve[best]),
                  {int(s): float(c) for s, c in zip(shifts, curve, strict=True)})
