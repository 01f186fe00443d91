"""Per-window timeline of one detection (``syncdefense detect --plot out.png``).

matplotlib is imported inside the functions so that ``import sync_defense.client`` works without it, and the figure is drawn on an
Agg canvas without pyplot: nothing is registered globally, so a long-running CLI leaks no figures and never opens a window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# No red: red is kept for the fake segments.
TRACK_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:olive", "tab:cyan", "tab:gray")
SEGMENT_COLOR = "tab:red"
EVIDENCE_COLOR = "tab:orange"  # the forgery evidence that fired: a band along the bottom where it shows
EVIDENCE_BAND = (0.0, 0.04)  # its height, in axes fractions
_UNSCORED = ("no_face", "no_speech")  # verdicts whose fake probability means nothing


def plot_paths(base: Path, files: Sequence[str]) -> list[Path]:
    """One output path per video: ``base`` for one video, else ``<stem>-<video stem><suffix>`` beside ``base``.

    Videos with the same stem (``a/talk.mp4``, ``b/talk.mp4``) get ``-2``, ``-3``... so no plot overwrites another.
    """
    base = Path(base)
    if len(files) == 1:
        return [base]
    paths: list[Path] = []
    for file in files:
        stem, n = Path(file).stem, 1
        while (path := base.with_name(f"{base.stem}-{stem}{f'-{n}' if n > 1 else ''}{base.suffix}")) in paths:
            n += 1
        paths.append(path)
    return paths


def plot_timeline(result: dict, path: str | Path) -> None:
    """Write the per-window fake probabilities of ``result`` (one video of ``detect --json``) as an image to ``path``.

    The format follows the suffix (``.png``, ``.svg``, ``.pdf``); a video without windows still gets a figure, so
    the user always finds the file they asked for.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title(_title(result), fontsize="medium")
    ax.set_xlim(0, _duration(result))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("fake probability")
    windows = result.get("windows") or []
    if windows:
        min_speech = _min_speech(result)
        _draw_segments(ax, result.get("segments") or [], several_tracks=len({w.get("track_id", 0) for w in windows}) > 1)
        _draw_evidence(ax, result.get("faces") or [])
        _draw_windows(ax, windows, result.get("faces") or [], min_speech)
        _draw_thresholds(ax, result.get("thresholds") or {})
        _legend(ax, windows, min_speech)
    else:
        note = "no face found" if result.get("verdict") == "no_face" else "no windows scored"
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize="large", color="0.4")
    fig.savefig(path, bbox_inches="tight")


def _title(result: dict) -> str:
    """``talk.mp4 — fake (p=0.91), A/V offset +6 frames (+0.24 s)``; parts the server did not send are left out."""
    verdict = result.get("verdict", "?")
    title = f"{result.get('file', '')} — {verdict}"
    p = result.get("fake_probability")
    if verdict not in _UNSCORED and _is_number(p):
        title += f" (p={p:.2f})"
    frames, seconds = result.get("av_offset_frames"), result.get("av_offset_s")
    if _is_number(frames):
        title += f", A/V offset {round(frames):+d} frames" + (f" ({seconds:+.2f} s)" if _is_number(seconds) else "")
    return title


def _is_number(value: object) -> bool:
    """JSON gives ``null`` (and a float NaN may slip through) where the server does not know a value."""
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def _duration(result: dict) -> float:
    """The video's length, or the last window's end when the server sent none: the x axis must not collapse."""
    ends = [w["end_s"] for w in result.get("windows") or []]
    duration = result.get("duration_s")
    return duration if _is_number(duration) and duration > 0 else max(ends, default=1.0)


def _min_speech(result: dict) -> float:
    """The server's speech threshold: windows with less speech did not vote (all vote when it sent none)."""
    speech = (result.get("thresholds") or {}).get("speech")
    return speech if _is_number(speech) else 0.0


def _draw_windows(ax: Axes, windows: list[dict], faces: list[dict], min_speech: float) -> None:
    """One colour per face track: each window is a bar over its time span at its probability, joined at the centres.

    Windows without speech do not vote, so they are drawn faded with hollow markers.
    """
    speaking = {f.get("track_id", 0): bool(f.get("speaking")) for f in faces}
    for i, track_id in enumerate(sorted({w.get("track_id", 0) for w in windows})):
        color = TRACK_COLORS[i % len(TRACK_COLORS)]
        track = sorted((w for w in windows if w.get("track_id", 0) == track_id), key=lambda w: w["start_s"])
        label = f"face {track_id}" + (" (speaking)" if speaking.get(track_id) else "")
        ax.plot([_centre(w) for w in track], [w["fake_probability"] for w in track], color=color, linewidth=1, alpha=0.6, label=label)
        for voting in (True, False):
            part = [w for w in track if _votes(w, min_speech) == voting]
            ax.hlines(
                [w["fake_probability"] for w in part],
                [w["start_s"] for w in part],
                [w["end_s"] for w in part],
                colors=color,
                linewidth=2,
                alpha=0.8 if voting else 0.2,
            )
            ax.scatter(
                [_centre(w) for w in part],
                [w["fake_probability"] for w in part],
                s=14,
                zorder=3,
                facecolors=color if voting else "none",
                edgecolors=color,
                alpha=1 if voting else 0.5,
            )


def _centre(window: dict) -> float:
    return (window["start_s"] + window["end_s"]) / 2


def _votes(window: dict, min_speech: float) -> bool:
    """A window without a speech score (older servers) is taken to vote, as it did then."""
    return window.get("speech", 1.0) >= min_speech


def _legend(ax: Axes, windows: list[dict], min_speech: float) -> None:
    """Outside the axes, so it never hides a window or a segment; explains the hollow markers when there are any."""
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    if not all(_votes(w, min_speech) for w in windows):
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markerfacecolor="none",
                markeredgecolor="0.4",
                markersize=4,
                label="no speech (does not vote)",
            )
        )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)


def _draw_segments(ax: Axes, segments: list[dict], several_tracks: bool) -> None:
    """Shade the spans the server called fake, with their probability at the top (and the face when there are several)."""
    for i, seg in enumerate(segments):
        ax.axvspan(seg["start_s"], seg["end_s"], color=SEGMENT_COLOR, alpha=0.2, linewidth=0, label="fake segment" if i == 0 else None)
        text = f"p={seg['fake_probability']:.2f}"
        if several_tracks:
            text = f"face {seg.get('track_id', 0)} {text}"
        ax.text(
            (seg["start_s"] + seg["end_s"]) / 2,
            0.98,
            text,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize="x-small",
            color="darkred",
            bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1},
        )


def _draw_evidence(ax: Axes, faces: list[dict]) -> None:
    """A band along the bottom wherever a face's forgery evidence fired (``faces[].forgery_evidence[].spans``), so a
    face whose lips follow the speech shows what kept it from being cleared, and when."""
    fired = [(face.get("track_id", 0), e) for face in faces for e in face.get("forgery_evidence") or [] if e.get("fired")]
    for i, (track_id, evidence) in enumerate(fired):
        for j, (start_s, end_s) in enumerate(evidence.get("spans") or []):
            label = "forgery evidence fired" if i == j == 0 else None
            ax.axvspan(start_s, end_s, *EVIDENCE_BAND, color=EVIDENCE_COLOR, alpha=0.9, linewidth=0, label=label)
        if evidence.get("spans"):
            ax.text(evidence["spans"][0][0], EVIDENCE_BAND[1] + 0.01 + 0.05 * i, f"face {track_id}: {evidence['name']}",
                    transform=ax.get_xaxis_transform(), fontsize="x-small", color="darkorange", va="bottom")


def _draw_thresholds(ax: Axes, thresholds: dict) -> None:
    """The decision lines: windows above ``fake`` push towards fake, below ``real`` towards real."""
    for name, color in (("fake", "darkred"), ("real", "darkgreen")):
        value = thresholds.get(name)
        if _is_number(value):
            ax.axhline(value, color=color, linestyle="--", linewidth=0.8, label=f"{name} threshold {value:.2f}")
