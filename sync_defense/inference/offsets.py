"""The audio-video offset search (SyncNet-style), planned, scored and read back in one place.

Plan: every window is scored with its own audio (shift 0); on each face's ``windows`` most voiced
windows the audio may also be slid by every shift up to ``max_frames`` either way. Score: in two
rounds, each mouth window and each distinct audio window encoded once, however many pairs and
rounds share it (``AudioPlan``): first every ``step``-th shift and the edges (``on_grid``), then
the shifts next to the first round's ``refine`` best (``second_round``); a planned pair neither
round needs stays unscored (NaN). Read back: the scored shift whose pairs look most in sync is the
face's offset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OffsetSearchConfig:
    max_frames: int = 15  # the audio is slid by up to this many frames either way
    windows: int = 4  # per face: its most voiced windows are searched; each costs up to 2 * max_frames audio windows
    # The model's curve over shifts dips at single frames: on the 92 real validation and forgery cases,
    # step 3 or refine 4 changed offsets that the full search (step 1) answers; step 2 with refine 5
    # changed no verdict, probability or answered offset, and scores about 3/4 of the shifted pairs.
    step: int = 2  # the first round scores every step-th shift; 1: every shift in one round
    refine: int = 5  # the second round scores the unscored shifts next to the first round's this many best


DEFAULT_SEARCH = OffsetSearchConfig()


def search_shifts(start: int, n_frames: int, clip_frames: int, cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> np.ndarray:
    """The shifts (frames, not 0) for a window at ``start`` that keep the shifted audio inside the video."""
    shifts = np.arange(-cfg.max_frames, cfg.max_frames + 1)
    shifts = shifts[shifts != 0]
    return shifts[(start + shifts >= 0) & (start + shifts <= n_frames - clip_frames)]


@dataclass(frozen=True)
class PairPlan:
    """The pairs ``(mouth window, audio shift)`` the search may score for one upload."""

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


def on_grid(shift: np.ndarray, cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> np.ndarray:
    """The first round's shifts: every ``cfg.step``-th, 0 among them, and the edges, so that a best
    shift on the edge (the offset may lie beyond) is seen whatever the step."""
    return (shift % cfg.step == 0) | (np.abs(shift) == cfg.max_frames)


def second_round(pair_window: np.ndarray, pair_shift: np.ndarray, pair_probability: np.ndarray,
                 cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> np.ndarray:
    """The unscored (NaN) pairs less than ``cfg.step`` away from one of the ``cfg.refine`` best shifts
    of the first round, on every searched window: a dip between two grid shifts shows on its neighbours.

    The best shifts are those of all searched windows together (``score`` does not know the faces);
    a second face's dip is refined when it ranks among them.
    """
    shifts, curve = _curve(np.isin(pair_window, pair_window[pair_shift != 0]), pair_shift, pair_probability)
    best = shifts[np.argsort(curve, kind="stable")[: cfg.refine]]
    near = (best[:, None] + np.arange(1 - cfg.step, cfg.step)).reshape(-1)
    return np.isnan(pair_probability) & np.isin(pair_shift, near)


async def search_rounds(pair_window: np.ndarray, pair_shift: np.ndarray, score: Callable[[np.ndarray], Awaitable[np.ndarray]],
                        cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> np.ndarray:
    """Each pair's probability from ``score`` (pair indices -> their probabilities), asked in the search's
    two rounds: the grid (``on_grid``), then the shifts next to its best (``second_round``); NaN for a
    pair neither round needs."""
    probability = np.full(len(pair_window), np.nan, np.float32)
    first = np.flatnonzero(on_grid(pair_shift, cfg))
    probability[first] = await score(first)
    second = np.flatnonzero(second_round(pair_window, pair_shift, probability, cfg))
    probability[second] = await score(second)
    return probability


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
    curve: dict[int, float]  # mean fake probability at each scored shift


def _curve(pairs: np.ndarray, pair_shift: np.ndarray, pair_probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shifts scored among ``pairs`` (a mask) and the mean probability of their scored pairs at each."""
    pairs = pairs & ~np.isnan(pair_probability)
    shifts = np.unique(pair_shift[pairs])
    return shifts, np.array([pair_probability[pairs & (pair_shift == s)].mean() for s in shifts])


def estimate_offset(rows: np.ndarray, pair_window: np.ndarray, pair_shift: np.ndarray, pair_probability: np.ndarray,
                    cfg: OffsetSearchConfig = DEFAULT_SEARCH) -> Offset | None:
    """The scored shift under which the searched windows among ``rows`` look most in sync.

    A best shift on the edge of the search says the true offset may lie beyond it: it is reported
    as unknown (``frames`` None) rather than as the edge. The median of the confidence is taken on
    the first round's grid, which samples the shifts evenly; the second round's crowd near the minima.
    """
    searched = np.unique(pair_window[np.isin(pair_window, rows) & (pair_shift != 0)])
    if not searched.size:
        return None
    shifts, curve = _curve(np.isin(pair_window, searched), pair_shift, pair_probability)
    best = int(np.argmin(curve))
    frames = int(shifts[best])
    on_edge = abs(frames) >= cfg.max_frames
    return Offset(None if on_edge else frames, float(np.median(curve[on_grid(shifts, cfg)]) - curve[best]),
                  {int(s): float(c) for s, c in zip(shifts, curve, strict=True)})
