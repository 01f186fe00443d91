"""Fit ``mouth_pasted``'s threshold on training-role material only, then measure it on other sets.

    python -m sync_defense.offline.training.artefact_threshold --training build/realdata/training \
        --forgeries build/forgeries/training --measure build/forgeries/validation --measure build/realval

Every clip is read the same way (``self_blended.frames_of``: the face mesh and the served detector
on every ``texture.artefact_every``-th frame, then the served crops), and judged as the server judges
a face (``evidence.pasted_evidence``: the most suspicious 2 s). Genuine: 10-s segments of the
training-role videos (which the detector was trained on, so their values are optimistic; no other
genuine training-role faces exist). Forgeries: the training-role synchronised forgeries, made from the
same videos by four techniques the detector never saw. The threshold is the highest genuine value plus
``--margin``, because faces the detector never saw score higher than those it trained on (the held-out
training-role video: 0.52 against at most 0.18 for the other real talking faces); the share of
forgeries it catches is reported, with both distributions, in ``--report``. Each ``--measure`` set
(a case manifest: the validation forgeries with their re-encoded originals, the real validation set)
is then only measured with that threshold, case by case and kind by kind; nothing is fitted on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sync_defense.inference.evidence import pasted_evidence
from sync_defense.model.artefact import MouthArtefactNet, load_artefact_net
from sync_defense.offline.realdata.forgeries import load_recording
from sync_defense.preprocessing import DEFAULT_CONFIG

from .self_blended import CLIP_FRAMES, frames_of, predict, segments, served_crops


def clip_value(data: bytes, model: MouthArtefactNet, first: int = 0) -> float | None:
    """``mouth_pasted``'s value of the clip's face over ``CLIP_FRAMES`` frames from ``first``."""
    rec = load_recording(data, "clip", "", first, CLIP_FRAMES)
    frames = frames_of(rec, DEFAULT_CONFIG.texture.artefact_every)
    if not frames:
        return None
    mouths, uppers = (np.stack(crops) for crops in zip(*(served_crops(f) for f in frames), strict=True))
    at = np.array([f.index for f in frames], np.int32)
    return pasted_evidence(at, predict(model, mouths, uppers), rec.n, DEFAULT_CONFIG.timeline.fps).value


def genuine_values(training: Path, model: MouthArtefactNet) -> dict[str, float | None]:
    """Each training-role video's 10-s segments (``self_blended.segments``)."""
    manifest = json.loads((training / "manifest.json").read_text())
    out = {}
    for item in (i for i in manifest["items"] if i["media"] == "video"):
        data = (training / item["file"]).read_bytes()
        for first in segments(item["duration_s"], DEFAULT_CONFIG.timeline.fps, 4):
            try:
                out[f"{item['source']}@{first}"] = clip_value(data, model, first)
            except ValueError as exc:
                print(f"skipped {item['source']} at {first}: {exc}")
    return out


def case_values(folder: Path, model: MouthArtefactNet) -> dict[str, dict]:
    """Each case of a manifest (``realdata`` layout): its kind, label and value (None: no face measured)."""
    out = {}
    for case in json.loads((folder / "manifest.json").read_text())["cases"]:
        try:
            value = clip_value((folder / case["file"]).read_bytes(), model)
        except ValueError:
            value = None
        out[case["case"]] = {"kind": case["kind"], "label": case["label"], "value": value}
    return out


def by_kind(cases: dict[str, dict], threshold: float) -> dict[str, str]:
    """``fired / measured`` per kind."""
    kinds: dict[str, list[float]] = {}
    for case in cases.values():
        if case["value"] is not None:
            kinds.setdefault(case["kind"], []).append(case["value"])
    return {kind: f"{sum(v >= threshold for v in values)} / {len(values)}" for kind, values in sorted(kinds.items())}


def fit(genuine: list[float], margin: float) -> float:
    """The highest genuine value plus ``margin``, to two decimals: no genuine training-role face fires."""
    return round(max(genuine) + margin, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training", type=Path, default=Path("build/realdata/training"))
    parser.add_argument("--forgeries", type=Path, default=Path("build/forgeries/training"))
    parser.add_argument("--checkpoint", type=Path, default=Path("build/artefact/mouth_artefact.pt"))
    parser.add_argument("--margin", type=float, default=0.1, help="above the highest genuine training-role value")
    parser.add_argument("--measure", type=Path, action="append", default=[], help="a case folder to measure (never fitted on)")
    parser.add_argument("--report", type=Path, default=Path("build/artefact/threshold.json"))
    args = parser.parse_args(argv)
    model = load_artefact_net(args.checkpoint)
    genuine, forged = genuine_values(args.training, model), case_values(args.forgeries, model)
    threshold = fit([v for v in genuine.values() if v is not None], args.margin)
    segments_as_cases = {k: {"kind": "genuine", "label": "real", "value": v} for k, v in genuine.items()}
    report = {"threshold": threshold, "training_genuine": {"fired": by_kind(segments_as_cases, threshold), "values": genuine},
              "training_forgeries": {"fired": by_kind(forged, threshold), "cases": forged},
              "measured": {str(folder): {"fired": by_kind(cases, threshold), "cases": cases}
                           for folder, cases in ((f, case_values(f, model)) for f in args.measure)}}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1))
    print(f"threshold {threshold}; fired / measured:")
    for name, part in [("training-role genuine segments", report["training_genuine"]),
                       ("training-role forgeries", report["training_forgeries"]), *report["measured"].items()]:
        print(f"  {name}: " + ", ".join(f"{kind} {count}" for kind, count in part["fired"].items()))


if __name__ == "__main__":
    main()
