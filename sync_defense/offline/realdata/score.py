"""Score the real validation set through a running Triton server and write the per-clip table.

    python -m sync_defense.offline.realdata.score --manifest build/realval/manifest.json --url localhost:8001 --out build/realval/report

Every case goes through the project's client exactly as a user's upload would; nothing is tuned here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sync_defense.contract import FaceReport
from sync_defense.offline.metrics import quantiles, roc_auc

from .compose import validate_manifest

TOLERANCE_FRAMES = 2  # the issue's target: offsets within ±2 frames of the truth
VERDICTS = ("real", "uncertain", "fake")


def row(entry: dict, answer: dict | None, error: str | None = None, face: FaceReport | None = None) -> dict:
    """One line of the table from a manifest entry and the server's answer (None when it refused the file)
    with the face that decided it (``Answer.deciding_face``): which test decided, and what both said."""
    answer = answer or {}
    offset, expected = answer.get("av_offset_frames"), entry["expected_offset_frames"]
    return {
        "case": entry["case"], "label": entry["label"], "kind": entry["kind"], "driver": entry.get("driver"),
        "verdict": answer.get("verdict", "error"), "fake_probability": answer.get("fake_probability"),
        "confidence": answer.get("confidence"), "offset_frames": offset, "expected_offset_frames": expected,
        "offset_error": None if offset is None or expected is None else round(offset - expected, 3),
        "faces": len(answer.get("faces", [])), "evidence": face.evidence if face else None, **_tests_of(face),
        "forgery": _fired(face),
        "lips_at_zero": lips_at_upload(face),
        "latency_ms": answer.get("latency_ms"), "error": error, "answer": answer or None,
    }


def lips_at_upload(face: FaceReport | None) -> float | None:
    """The lip test's correlation with the audio as uploaded (None: no lips measured)."""
    return face.lip_sync.at_zero if face is not None and face.lip_sync is not None else None


def _shares(rows: list[dict]) -> dict:
    n = len(rows)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    counts["other"] = n - sum(counts.values())  # no_face, no_speech, error
    return {"n": n, **{k: (c / n if n else None) for k, c in counts.items()}}


def _within(rows: list[dict]) -> float | None:
    """Share of rows whose estimated offset is within the tolerance of the expected one (no estimate = a miss)."""
    if not rows:
        return None
    return sum(r["offset_error"] is not None and abs(r["offset_error"]) <= TOLERANCE_FRAMES for r in rows) / len(rows)


def groups(rows: list[dict]) -> dict[str, dict]:
    """Verdict shares, offsets within tolerance and the median fake_probability of each kind, each driver (forgery
    manifests: ``driver=mouth``, ``driver=audio``) and each kind by driver: technique by technique."""
    keys: dict[str, list[dict]] = {}
    for r in rows:
        names = [r["kind"]] + ([f"driver={r['driver']}", f"{r['kind']}/{r['driver']}"] if r.get("driver") else [])
        for name in names:
            keys.setdefault(name, []).append(r)
    return {name: {**_shares(group), "offset_within": _within(group),
                   "median_fake_probability": (quantiles([r["fake_probability"] for r in group]) or [None] * 3)[1]}
            for name, group in keys.items()}


def summarise(rows: list[dict]) -> dict:
    """The figures the issue's targets are stated in, from the per-clip rows."""
    genuine = [r for r in rows if r["label"] == "real"]
    fakes = [r for r in rows if r["label"] == "fake"]
    scored_g = [r["fake_probability"] for r in genuine if r["fake_probability"] is not None]
    scored_f = [r["fake_probability"] for r in fakes if r["fake_probability"] is not None]
    g, f = _shares(genuine), _shares(fakes)
    offsets = {"genuine_within": _within(genuine), "shifted_within": _within([r for r in fakes if r["kind"] == "shift"]),
               "tolerance_frames": TOLERANCE_FRAMES}
    return {
        "genuine": g, "fakes": f, "offset": offsets, "groups": groups(rows),
        "roc_auc": roc_auc(scored_g, scored_f), "auc_counts": {"genuine": len(scored_g), "fake": len(scored_f)},
        "lips_at_zero": {"genuine": quantiles([r["lips_at_zero"] for r in genuine]),
                         "fakes": quantiles([r["lips_at_zero"] for r in fakes])},
        "targets": {
            "no_genuine_called_fake": g["n"] > 0 and g["fake"] == 0,
            "genuine_real_at_least_80pct": g["n"] > 0 and g["real"] >= 0.8,
            "fakes_fake_at_least_90pct": f["n"] > 0 and f["fake"] >= 0.9,
            "offsets_all_within_tolerance": offsets["genuine_within"] == 1 and offsets["shifted_within"] == 1,
        },
    }


def _fmt(value: object, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _tests_of(face: FaceReport | None) -> dict[str, str]:
    """The deciding face's two tests, short: the model's probability (best shift, self-test) and the lips'
    verdict (lag, peak / chance peak); what the ``evidence`` column chose between."""
    if face is None or face.model_probability is None:
        return {"model": "-", "lips": "-"}
    model = f"{face.model_probability:.3f} ({_fmt(face.model_offset_frames)}, {_fmt(face.model_self_test, '.2f')})"
    lips = face.lip_sync
    if lips is None or lips.peak is None:
        return {"model": model, "lips": lips.verdict if lips else "-"}
    return {"model": model, "lips": f"{lips.verdict} ({_fmt(lips.lag_frames)}, {lips.peak:.2f} / {_fmt(lips.chance_peak, '.2f')})"}


def _fired(face: FaceReport | None) -> str:
    """The deciding face's forgery traces that fired, each with where it first shows (``-``: none fired)."""
    fired = [e for e in face.forgery_evidence if e.fired] if face is not None else []
    return ", ".join(f"{e.name} ({e.spans[0][0]:.1f}-{e.spans[0][1]:.1f} s)" if e.spans else e.name for e in fired) or "-"


def markdown(rows: list[dict], summary: dict, url: str) -> str:
    g, f, o = summary["genuine"], summary["fakes"], summary["offset"]
    lines = [
        f"# Real validation set, scored through the server at {url}", "",
        f"- Genuine ({g['n']}): real {_fmt(g['real'], '.0%')}, uncertain {_fmt(g['uncertain'], '.0%')}, "
        f"fake {_fmt(g['fake'], '.0%')}, no answer {_fmt(g['other'], '.0%')}",
        f"- Fakes ({f['n']}): called fake {_fmt(f['fake'], '.0%')} (uncertain {_fmt(f['uncertain'], '.0%')}, "
        f"real {_fmt(f['real'], '.0%')}, no answer {_fmt(f['other'], '.0%')})",
        f"- Offset within ±{o['tolerance_frames']} frames: genuine {_fmt(o['genuine_within'], '.0%')}, "
        f"shifted {_fmt(o['shifted_within'], '.0%')}",
        f"- ROC-AUC of fake_probability: {_fmt(summary['roc_auc'], '.3f')} "
        f"({summary['auc_counts']['genuine']} genuine, {summary['auc_counts']['fake']} fakes with a probability)",
        f"- The lip test's correlation at the uploaded alignment, 10/50/90%: genuine {summary['lips_at_zero']['genuine']}, "
        f"fakes {summary['lips_at_zero']['fakes']}",
        "- Targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in summary["targets"].items()), "",
        "`model`: the learned model's probability (its best audio shift, its self-test); `lips`: the lip-sync test's "
        "verdict (lag, correlation peak / this upload's chance peak); `forgery evidence fired`: its traces past their "
        "thresholds, where each first shows; all three for the deciding face.", "",
        "| group | n | real | uncertain | fake | no answer | offset within | median fake_probability |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {name} | {s['n']} | {_fmt(s['real'], '.0%')} | {_fmt(s['uncertain'], '.0%')} | {_fmt(s['fake'], '.0%')} | "
          f"{_fmt(s['other'], '.0%')} | {_fmt(s['offset_within'], '.0%')} | {_fmt(s['median_fake_probability'], '.3f')} |"
          for name, s in summary.get("groups", {}).items()), "",
        "| case | label | kind | verdict | fake_probability | confidence | offset | expected | error | faces | evidence "
        "| model | lips | forgery evidence fired | latency ms |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['label']} | {r['kind']} | {r['verdict']} | {_fmt(r['fake_probability'], '.3f')} | "
                     f"{_fmt(r['confidence'], '.3f')} | {_fmt(r['offset_frames'])} | {_fmt(r['expected_offset_frames'])} | "
                     f"{_fmt(r['offset_error'])} | {r['faces']} | {_fmt(r['evidence'])} | {r['model']} | {r['lips']} | {r['forgery']} | "
                     f"{_fmt(r['latency_ms'], '.0f')} |")
    return "\n".join(lines) + "\n"


def score(manifest: Path, url: str, protocol: str, out: Path, timeout_s: float) -> dict:
    """Send every case to the server, write report.json and report.md into `out`, and return the report."""
    from sync_defense.client import DetectionError, SyncDefenseClient  # tritonclient is only needed to score

    data = json.loads(manifest.read_text())
    if any("driver" in e for e in data.get("cases") or []):  # synchronised forgeries (forgeries.py)
        from .forgeries import validate_manifest as validate_forgeries

        validate_forgeries(data)
    else:
        validate_manifest(data)
    rows = []
    with SyncDefenseClient(url, protocol=protocol, timeout_s=timeout_s) as client:
        for entry in data["cases"]:
            try:
                detection = client.detect(manifest.parent / entry["file"])
                rows.append(row(entry, detection.to_dict(), face=detection.answer.deciding_face))
            except DetectionError as exc:
                rows.append(row(entry, None, str(exc)))
            print(" ".join(f"{k}={rows[-1][k]}" for k in ("case", "verdict", "fake_probability", "offset_frames")), flush=True)
    report = {"manifest": str(manifest), "url": url, "summary": summarise(rows), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "report.md").write_text(markdown(rows, report["summary"], url))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=Path("build/realval/manifest.json"))
    parser.add_argument("--url", default="localhost:8001")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--out", type=Path, default=Path("build/realval/report"))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per file")
    args = parser.parse_args(argv)
    score(args.manifest, args.url, args.protocol, args.out, args.timeout)
    print((args.out / "report.md").read_text().split("\n| case")[0])
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
