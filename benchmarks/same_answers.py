"""Two served runs of the same case manifest, case by case: did a change move any answer?

    python -m sync_defense.offline.realdata.score --manifest build/realval/manifest.json --url A --out build/realval/report_a
    python -m sync_defense.offline.realdata.score --manifest build/realval/manifest.json --url B --out build/realval/report_b
    python -m benchmarks.same_answers build/realval/report_a build/realval/report_b

Counts the cases whose verdict, offset, lip-sync test (verdict and lag) and fired forgery evidence are
the same, prints the largest change of the fake probability and every case that moved.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(report: Path) -> dict[str, dict]:
    return {row["case"]: row for row in json.loads((report / "report.json").read_text())["rows"]}


def face_answers(row: dict) -> list[tuple]:
    """Each face's lip-sync verdict and lag and the names of the forgery traces that fired."""
    faces = (row.get("answer") or {}).get("faces", [])
    return [(f["lip_sync"]["verdict"], f["lip_sync"]["lag_frames"], tuple(e["name"] for e in f["forgery_evidence"] if e["fired"]))
            for f in faces]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = rows(args.before), rows(args.after)
    if before.keys() != after.keys():
        raise SystemExit(f"the reports cover different cases: {sorted(before.keys() ^ after.keys())}")
    fields = {"verdict": lambda r: r["verdict"], "offset": lambda r: r["offset_frames"], "faces": face_answers}
    same = {name: sum(get(before[c]) == get(after[c]) for c in before) for name, get in fields.items()}
    change = max(abs((before[c]["fake_probability"] or 0.0) - (after[c]["fake_probability"] or 0.0)) for c in before)
    print(f"{len(before)} cases: same verdict {same['verdict']}, same offset {same['offset']}, same lip test and "
          f"fired evidence on every face {same['faces']}; largest |fake_probability change| {change:.4f}")
    for case in before:
        if any(get(before[case]) != get(after[case]) for get in fields.values()):
            print(f"  {case}: {before[case]['verdict']} -> {after[case]['verdict']}, "
                  f"{face_answers(before[case])} -> {face_answers(after[case])}")


if __name__ == "__main__":
    main()
