"""The ``detect --plot`` timeline: a real PNG with the fake segment shaded where the server put it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sync_defense.client.plot import _title, plot_paths, plot_timeline

pytest.importorskip("matplotlib")

SEGMENT = (4.0, 6.0)
DURATION = 12.0


def _windows(track_id: int, first_s: float, probability: float, fake_in_segment: bool, silent_s: tuple[float, float]) -> list[dict]:
    """1 s windows every 0.5 s from ``first_s``; those starting inside ``silent_s`` have no speech."""
    starts = np.arange(first_s, DURATION - 0.5, 0.5)
    return [
        {
            "track_id": track_id,
            "start_s": float(t),
            "end_s": float(t) + 1,
            "speech": 0.1 if silent_s[0] <= t < silent_s[1] else 0.9,
            "fake_probability": 0.95 if fake_in_segment and SEGMENT[0] <= t <= SEGMENT[1] - 1 else probability,
        }
        for t in starts
    ]


def _fake_result() -> dict:
    """Two faces (the second never speaks), one fake segment on face 0."""
    return {
        "file": "talk.mp4",
        "verdict": "fake",
        "fake_probability": 0.91,
        "confidence": 0.82,
        "av_offset_frames": 6,
        "av_offset_s": 0.24,
        "duration_s": DURATION,
        "faces": [
            {
                "track_id": 0,
                "box": [10, 10, 80, 80],
                "first_s": 0.0,
                "last_s": DURATION,
                "fake_probability": 0.91,
                "av_offset_frames": 6,
                "speaking": True,
            },
            {
                "track_id": 1,
                "box": [200, 10, 60, 60],
                "first_s": 2.0,
                "last_s": DURATION,
                "fake_probability": 0.2,
                "av_offset_frames": None,
                "speaking": False,
            },
        ],
        "segments": [{"track_id": 0, "start_s": SEGMENT[0], "end_s": SEGMENT[1], "fake_probability": 0.97}],
        "windows": _windows(0, 0.0, 0.1, True, (9.0, 11.0)) + _windows(1, 2.0, 0.3, False, (0.0, DURATION)),
        "thresholds": {"fake": 0.65, "real": 0.35, "speech": 0.3},
        "latency_ms": 2100.0,
    }


def _read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    rgb = imread(path)[..., :3]  # floats in 0..1
    assert rgb.ndim == 3 and rgb.shape[0] > 300 and rgb.shape[1] > 900
    assert rgb.std() > 0.05, "the image is blank"
    return rgb


def _axes_columns(rgb: np.ndarray) -> tuple[int, int]:
    """The pixel columns of the left and right spines: the only near-black lines spanning most of the height."""
    dark = (rgb.max(axis=2) < 0.25).sum(axis=0)
    spines = np.flatnonzero(dark > 0.5 * dark.max())
    assert spines[-1] - spines[0] > rgb.shape[1] // 2, "found no axes frame"
    return spines[0], spines[-1]


def _shaded_columns(rgb: np.ndarray) -> np.ndarray:
    """Per pixel column, the fraction of pixels that are the pale red of the segment shading."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    pink = (r > 0.85) & (r - g > 0.1) & (r - b > 0.1) & (np.abs(g - b) < 0.08)
    return pink.mean(axis=0)


def test_timeline_shades_the_fake_segment(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    plot_timeline(_fake_result(), out)
    rgb = _read_png(out)
    left, right = _axes_columns(rgb)
    shaded = _shaded_columns(rgb)

    def column(t: float) -> int:
        return round(left + (right - left) * t / DURATION)

    inside = shaded[column(SEGMENT[0] + 0.1) : column(SEGMENT[1] - 0.1)]
    outside = np.concatenate([shaded[column(0.2) : column(SEGMENT[0] - 0.2)], shaded[column(SEGMENT[1] + 0.2) : column(DURATION - 0.2)]])
    assert inside.min() > 0.3, "the fake segment is not shaded"
    assert outside.max() < 0.1, "red shading outside the fake segment"


def _orange_columns(rgb: np.ndarray) -> np.ndarray:
    """Per pixel column, the fraction of pixels that are the orange of the fired forgery evidence."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return ((r > 0.9) & (g > 0.4) & (g < 0.65) & (b < 0.25)).mean(axis=0)


def test_timeline_marks_where_forgery_evidence_fired(tmp_path: Path) -> None:
    fired = {"name": "phoneme_viseme", "fired": True, "value": 0.8, "threshold": 0.5, "support": 6, "spans": [[8.0, 10.0]],
             "summary": "4 of 5 lip closures missed"}
    quiet = {**fired, "name": "mouth_blur", "fired": False, "spans": [[1.0, 3.0]]}
    result = _fake_result()
    result["faces"][0]["forgery_evidence"] = [fired, quiet]
    out = tmp_path / "evidence.png"
    plot_timeline(result, out)
    rgb = _read_png(out)
    left, right = _axes_columns(rgb)
    orange = _orange_columns(rgb)

    def column(t: float) -> int:
        return round(left + (right - left) * t / DURATION)

    assert orange[column(8.2) : column(9.8)].min() > 0, "the fired evidence is not marked"
    assert orange[column(0.2) : column(7.5)].max() == 0, "evidence marked where none fired (or where it did not fire)"
    without = tmp_path / "none.png"
    plot_timeline(_fake_result(), without)
    assert _orange_columns(_read_png(without)).max() == 0


def test_timeline_without_segments_has_no_shading(tmp_path: Path) -> None:
    out = tmp_path / "real.png"
    plot_timeline({**_fake_result(), "verdict": "real", "segments": [], "av_offset_frames": None, "thresholds": {}}, out)
    assert _shaded_columns(_read_png(out)).max() < 0.1


def test_no_face_still_writes_a_figure(tmp_path: Path) -> None:
    out = tmp_path / "none.png"
    plot_timeline(
        {
            "file": "empty.mp4",
            "verdict": "no_face",
            "fake_probability": 0.0,
            "av_offset_frames": None,
            "duration_s": 3.0,
            "faces": [],
            "segments": [],
            "windows": [],
        },
        out,
    )
    _read_png(out)


def test_other_formats_follow_the_suffix(tmp_path: Path) -> None:
    out = tmp_path / "out.svg"
    plot_timeline(_fake_result(), out)
    assert out.read_text().lstrip().startswith("<?xml")


def test_no_figures_leak(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for i in range(3):
        plot_timeline(_fake_result(), tmp_path / f"{i}.png")
    assert plt.get_fignums() == before


def test_importing_the_client_does_not_import_matplotlib() -> None:
    code = "import sys, sync_defense.client, sync_defense.client.plot; sys.exit('matplotlib' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "talk.mp4 — fake (p=0.91), A/V offset +6 frames (+0.24 s)"),
        ({"av_offset_frames": -3.0, "av_offset_s": None}, "talk.mp4 — fake (p=0.91), A/V offset -3 frames"),
        ({"av_offset_frames": None}, "talk.mp4 — fake (p=0.91)"),
        ({"verdict": "no_face", "av_offset_frames": None}, "talk.mp4 — no_face"),
    ],
)
def test_title(changes: dict, expected: str) -> None:
    assert _title({**_fake_result(), **changes}) == expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["a/talk.mp4"], ["out.png"]),
        (["a/talk.mp4", "b/news.mov"], ["out-talk.png", "out-news.png"]),
        (["a/talk.mp4", "b/talk.mp4", "c/talk.avi"], ["out-talk.png", "out-talk-2.png", "out-talk-3.png"]),
        (["talk-2.mp4", "talk.mp4", "talk.mp4"], ["out-talk-2.png", "out-talk.png", "out-talk-3.png"]),
        ([], []),
    ],
)
def test_plot_paths(tmp_path: Path, files: list[str], expected: list[str]) -> None:
    assert plot_paths(tmp_path / "out.png", files) == [tmp_path / name for name in expected]
