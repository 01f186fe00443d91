"""Forgery evidence that sync alone cannot give (issue 22): lips in sync never clear a face on their own.

A Wav2Lip-class generator re-makes the mouth so that it *does* follow the voice, so the sync tests
(the learned model, ``lipsync``) cannot see it. Each trace below is measured per face, training-free,
with the times where it shows; the decision calls a face ``real`` only when sync holds and none fires.

- ``phoneme_viseme`` (Agarwal et al., "Detecting deep-fake videos from phoneme-viseme mismatches",
  CVPR-W 2020): M, B and P are made with the lips shut. For each such phone the speech says
  (``preprocessing.phones``) while the face is articulating, the inner-lip aperture must fall below a
  closure level within the phone +- 1 frame; a generator that opens the mouth with the loudness
  misses them.
- ``too_perfect_sync``: a mouth driven by the loudness follows it more tightly than a speaker's does
  (lips close on loud M/B/P, move ahead of the sound, pause while the voice goes on).
- ``mouth_blur``, ``mouth_colour``, ``mouth_flicker``: the pasted mouth against the upper face
  (``preprocessing.texture``), judged per 1-s window; each fires when its most suspicious run of
  ``run_windows`` windows is past its threshold, and reports the windows past it.
- ``mouth_pasted``: the learned artefact detector (``model.artefact``, trained on self-blended real
  faces only), judged per 1-s window the same way. **Not served** (not in ``face_evidence``): measured
  offline (``offline.training.artefact_threshold``), it fires on genuine faces unlike its six
  training identities as readily as on forgeries.

Every threshold is one field of ``ForgeryEvidenceConfig``. None was fitted on the real validation
clips; each says where it comes from, and they are meant to be fitted on training-role forgeries.
Numpy only: it runs in the served preprocess step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sync_defense.contract import ForgeryEvidence
from sync_defense.preprocessing.crops import spans_of
from sync_defense.preprocessing.phones import Phones
from sync_defense.preprocessing.texture import TEXTURE

from .lipsync import LipSync

BILABIALS = frozenset({"M", "B", "P"})  # ARPAbet phones made with a full lip closure


@dataclass(frozen=True)
class ForgeryEvidenceConfig:
    """Each trace's threshold, one named number each (to be fitted on training-role forgeries)."""

    # Lips shut: the inner-lip aperture (lips 13-14 over the mouth width) below this. The face mesh's
    # canonical face, lips relaxed and just parted, measures 0.11 seen from the front (a gap of 0.55 over
    # a width of 4.91 in its own units); a closure is tighter than half that rest gap. Drawn closed mouths of the synthetic test videos
    # measure 0.011-0.069 (median 0.032) through the mesh, 90% of them below it.
    closure_aperture: float = 0.06
    closure_margin_frames: int = 1  # the closure may lead or trail the decoded phone by one frame (40 ms)
    # A bilabial is called for only where the face articulates: its lips open past twice the closure
    # level within this many frames either side (0.2 s, a syllable). A listener's still mouth is not asked to close.
    articulation_frames: int = 5
    min_closures: int = 4  # fewer called-for closures cannot fire (a short clip, a closed-mouth speaker)
    # Fires when at least this share of the closures called for are missed. The phone decoder also
    # finds M, B or P where none was said (5 of 76 training-role prompts without one,
    # ``preprocessing.phones``), so a genuine face misses some; half is the plain majority.
    missed_closure_share: float = 0.5
    # The lip test's correlation at the uploaded alignment (``LipSync.at_zero``) above which the mouth
    # follows the loudness too well. Genuine recordings top out well below: the real-validation summary
    # (checkpoints/REAL_VALIDATION.md, read, not fitted) puts them at 0.38 / 0.44 / 0.58 (10/50/90%) and
    # no genuine clip's peak reaches 0.7; the synthetic test videos' mouths, opened by the loudness
    # itself, measure 0.96 through the mesh. 0.8 lies between with room on both sides.
    too_perfect_correlation: float = 0.8
    # The texture traces were measured on the 7 training-role videos (genuine faces; the most
    # suspicious 2 s of each) and on the synthetic test videos: plain, in the corpus's generator style
    # (mouth patch blurred by 2-3 px and colour-shifted by 15-25 grey levels before the face is scaled
    # into the frame), and with the lower face re-made at 96 px across the face and scaled back up 3x.
    # Mouth square over upper-face crop, variance of the Laplacian, below which the mouth is blurred.
    # Genuine faces: 0.49-1.14; synthetic plain 0.87-1.48, generator style 0.39-0.51, the 96-px lower
    # face 0.41. Midway between the last and the lowest genuine face.
    blur_ratio: float = 0.45
    # CIELAB a*b* distance between the mouth square's skin ring and the upper face above which the
    # mouth's skin is another colour (about 2.3 is one just-noticeable difference). Genuine faces:
    # 2.6-10.0 (shade and light differ across a face); synthetic 2.5-4.7 either style.
    colour_shift: float = 15.0
    # The mouth square's skin ring changes this many times more per frame than the upper face (both
    # floored at ``flicker_floor_grey``): a mouth made frame by frame flickers where skin should be
    # still. Speech moves the chin and cheeks too: genuine faces 0.90-1.55, synthetic speech 1.35-2.68.
    flicker_ratio: float = 4.0
    flicker_floor_grey: float = 1.0  # grey levels: the change of a still face through a lossy codec
    # The artefact detector's (``model.artefact``) probability that the mouth is pasted (the median of a 1-s
    # window, the mean of the most suspicious 2 s) past which ``mouth_pasted`` fires. Fitted on training-role
    # material only (``python -m sync_defense.offline.training.artefact_threshold``): the 15 genuine 10-s
    # segments of the training-role videos reach 0.77 at most (the 176x144 carphone clip; the held-out video
    # 0.52), the 36 training-role synchronised forgeries 0.01-1.00; the highest genuine value plus a margin of
    # 0.1 catches 18 of 36 (generator 8/9, transplant 6/9, rewrite 2/9, warp 2/9).
    pasted_probability: float = 0.87
    window_frames: int = 25  # the texture traces are judged per 1-s window ...
    run_windows: int = 2  # ... and fire on a run of this many (as the model's 2-s localized evidence)
    min_window_frames: int = 13  # a window needs half its frames measured
    min_window_squares: int = 3  # ... and the artefact detector 3 of its 5 sampled frames (``texture.artefact_every``)


DEFAULT_EVIDENCE = ForgeryEvidenceConfig()


def _seconds(k0: int, k1: int, fps: float) -> list[float]:
    return [round(k0 / fps, 3), round(k1 / fps, 3)]


def closures(aperture: np.ndarray, phones: Phones, fps: float,
             cfg: ForgeryEvidenceConfig = DEFAULT_EVIDENCE) -> list[tuple[int, int, bool]]:
    """``(k0, k1, closed)`` for each M, B or P whose frames have measured lips while the face articulates:
    the frames of the phone +- ``closure_margin_frames`` and whether the lips shut in them."""
    aperture = np.asarray(aperture, np.float64)
    out = []
    for start_s, end_s in zip(*phones.of(BILABIALS), strict=True):
        first = int(np.floor(start_s * fps))
        last = max(first, int(np.ceil(end_s * fps)) - 1)
        if first < 0 or last >= len(aperture) or np.isnan(aperture[first : last + 1]).any():
            continue
        around = aperture[max(0, first - cfg.articulation_frames) : last + 1 + cfg.articulation_frames]
        if np.nanmax(around) < 2 * cfg.closure_aperture:
            continue  # the mouth stays shut or still: not articulating
        k0, k1 = max(0, first - cfg.closure_margin_frames), min(len(aperture), last + 1 + cfg.closure_margin_frames)
        out.append((k0, k1, bool(np.nanmin(aperture[k0:k1]) < cfg.closure_aperture)))
    return out


def phoneme_viseme(aperture: np.ndarray, phones: Phones, fps: float, cfg: ForgeryEvidenceConfig = DEFAULT_EVIDENCE) -> ForgeryEvidence:
    """M, B and P without a lip closure; ``spans``: each missed closure."""
    found = closures(aperture, phones, fps, cfg)
    missed = [(k0, k1) for k0, k1, closed in found if not closed]
    share = len(missed) / len(found) if found else None
    fired = len(found) >= cfg.min_closures and share >= cfg.missed_closure_share
    return ForgeryEvidence(
        "phoneme_viseme", bool(fired), None if share is None else round(share, 4), cfg.missed_closure_share, len(found),
        [_seconds(k0, k1, fps) for k0, k1 in missed],
        f"{len(missed)} of {len(found)} lip closures called for by M, B or P missed (closed: aperture < {cfg.closure_aperture})",
    )


def too_perfect_sync(lips: LipSync | None, aperture: np.ndarray, fps: float,
                     cfg: ForgeryEvidenceConfig = DEFAULT_EVIDENCE) -> ForgeryEvidence:
    """The lips follow the loudness at the uploaded alignment more tightly than speakers do; ``spans``: the
    measured stretches the correlation was taken over (it judges the whole face)."""
    value = None if lips is None else lips.at_zero
    fired = value is not None and value >= cfg.too_perfect_correlation
    spans = [_seconds(k0, k1, fps) for k0, k1 in spans_of(~np.isnan(np.asarray(aperture, np.float64)))] if fired else []
    words = "not measured" if value is None else f"{value:.2f}"
    return ForgeryEvidence("too_perfect_sync", fired, value, cfg.too_perfect_correlation, 0 if lips is None else lips.frames, spans,
                           f"lip opening against loudness at the uploaded alignment: correlation {words}")


@dataclass(frozen=True)
class _Trace:
    """One texture trace: its name, how a window's value is read from the texture rows, which side fires."""

    name: str
    window_value: Callable[[np.ndarray, ForgeryEvidenceConfig], float]
    threshold: str  # the field of ForgeryEvidenceConfig
    below: bool  # fires below the threshold (else above)
    words: str


def _column(rows: np.ndarray, name: str) -> np.ndarray:
    values = rows[:, TEXTURE.index(name)]
    return values[~np.isnan(values)]


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else np.nan


def _median_of(name: str) -> Callable[[np.ndarray, ForgeryEvidenceConfig], float]:
    return lambda rows, cfg: _median(_column(rows, name))


def _flicker(rows: np.ndarray, cfg: ForgeryEvidenceConfig) -> float:
    skin, upper = _median(_column(rows, "skin_change")), _median(_column(rows, "upper_change"))
    return max(skin, cfg.flicker_floor_grey) / max(upper, cfg.flicker_floor_grey) if not np.isnan(skin + upper) else np.nan


def _median_probability(rows: np.ndarray, cfg: ForgeryEvidenceConfig) -> float:
    return _median(rows[:, 0][~np.isnan(rows[:, 0])])


PASTED = _Trace("mouth_pasted", _median_probability, "pasted_probability", False,
                "the artefact detector's probability that the mouth is pasted")
TRACES = (
    _Trace("mouth_blur", _median_of("sharpness_ratio"), "blur_ratio", True,
           "mouth sharpness over the upper face's"),
    _Trace("mouth_colour", _median_of("colour_shift"), "colour_shift", False,
           "colour distance (CIELAB a*b*) of the mouth's skin from the upper face"),
    _Trace("mouth_flicker", _flicker, "flicker_ratio", False,
           "frame-to-frame change of the mouth's skin over the upper face's"),
)


def texture_evidence(texture: np.ndarray, fps: float, cfg: ForgeryEvidenceConfig = DEFAULT_EVIDENCE) -> list[ForgeryEvidence]:
    """The ``TRACES`` of one face from its per-frame texture on the timeline (NaN rows: not measured)."""
    texture = np.asarray(texture, np.float64)
    windows = _windows(~np.isnan(texture[:, 0]), cfg.min_window_frames, cfg)
    return [_trace_evidence(trace, texture, windows, fps, cfg) for trace in TRACES]


def pasted_evidence(frames: np.ndarray, probability: np.ndarray, n_frames: int, fps: float,
                    cfg: ForgeryEvidenceConfig = DEFAULT_EVIDENCE) -> ForgeryEvidence:
    """``mouth_pasted`` of one face from the artefact detector's probability on its sampled timeline ``frames``."""
    timeline = np.full((n_frames, 1), np.nan)
    inside = (frames >= 0) & (frames < n_frames)
    timeline[frames[inside], 0] = probability[inside]
    return _trace_evidence(PASTED, timeline, _windows(~np.isnan(timeline[:, 0]), cfg.min_window_squares, cfg), fps, cfg)


def _windows(measured: np.ndarray, min_rows: int, cfg: ForgeryEvidenceConfig) -> list[tuple[int, int]]:
    """The 1-s windows ``[k0, k1)`` with at least ``min_rows`` measured frames."""
    return [(k, min(k + cfg.window_frames, len(measured))) for k in range(0, len(measured), cfg.window_frames)
            if measured[k : k + cfg.window_frames].sum() >= min_rows]


def _trace_evidence(trace: _Trace, texture: np.ndarray, windows: list[tuple[int, int]], fps: float,
                    cfg: ForgeryEvidenceConfig) -> ForgeryEvidence:
    threshold, sign = getattr(cfg, trace.threshold), -1.0 if trace.below else 1.0
    values = np.array([trace.window_value(texture[k0:k1], cfg) for k0, k1 in windows])
    ok = ~np.isnan(values)
    values, kept = values[ok], [w for w, keep in zip(windows, ok, strict=True) if keep]
    if values.size < cfg.run_windows:
        return ForgeryEvidence(trace.name, False, None, threshold, int(values.size), [], f"{trace.words}: not enough measured windows")
    runs = np.convolve(sign * values, np.ones(cfg.run_windows) / cfg.run_windows, mode="valid")
    value = float(sign * runs.max())  # the most suspicious run's mean
    past = sign * values >= sign * threshold
    shows = np.zeros(len(texture), bool)  # the frames of the windows past the threshold
    for (k0, k1), hit in zip(kept, past, strict=True):
        shows[k0:k1] = hit
    spans = [_seconds(k0, k1, fps) for k0, k1 in spans_of(shows)]
    return ForgeryEvidence(trace.name, bool(sign * value >= sign * threshold), round(value, 4), threshold, int(values.size), spans,
                           f"{trace.words}: {value:.2f} over its most suspicious {cfg.run_windows} s, "
                           f"{int(past.sum())} of {values.size} 1-s windows past {threshold}")


def face_evidence(aperture: np.ndarray, texture: np.ndarray, phones: Phones, lips: LipSync | None, fps: float,
                  cfg: ForgeryEvidenceConfig = DEFAULT_EVIDENCE) -> list[ForgeryEvidence]:
    """Every trace of one face, fired or not."""
    return [phoneme_viseme(aperture, phones, fps, cfg), too_perfect_sync(lips, aperture, fps, cfg), *texture_evidence(texture, fps, cfg)]
