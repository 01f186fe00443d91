"""Does each forgery trace tell the synchronised forgeries from the genuine recordings? Read off served reports.

    python -m benchmarks.evidence_separation build/realval/report build/forgeries/validation/report

For every trace the served answer reports (``inference.evidence``), on the deciding face of each case:
how often it fired on the genuine recordings (label ``real``) and on the synchronised forgeries (kinds
``sync_*``), and the ROC-AUC of its value, oriented so that 1.0 means every forgery looks more forged
than every genuine face and 0.5 means the value carries no information. A threshold can only be as
good as the value it is put on: this shows which values are worth fitting a threshold to.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from sync_defense.offline.metrics import roc_auc

LOWER_IS_FORGED = frozenset({"mouth_blur"})  # fires below its threshold: a blurred mouth is less sharp than the face


def deciding_evidence(row: dict) -> dict[str, dict]:
    """The deciding face's traces by name ({} for a case with no answer or no deciding face)."""
    answer = row.get("answer") or {}
    face = next((f for f in answer.get("faces", []) if f["track_id"] == answer.get("deciding_track_id")), None)
    return {} if face is None else {e["name"]: e for e in face["forgery_evidence"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="folders written by sync_defense.offline.realdata.score")
    args = parser.parse_args()
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    fired: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for report in args.reports:
        for row in json.loads((report / "report.json").read_text())["rows"]:
            group = "genuine" if row["label"] == "real" else row["kind"] if row["kind"].startswith("sync_") else None
            for name, trace in deciding_evidence(row).items() if group else ():
                fired[name][group].append(bool(trace["fired"]))
                if trace["value"] is not None:
                    values[name][group].append(-trace["value"] if name in LOWER_IS_FORGED else trace["value"])
    for name in sorted(fired):
        forged = [v for group, vs in values[name].items() if group != "genuine" for v in vs]
        auc = roc_auc(values[name]["genuine"], forged)
        counts = ", ".join(f"{group} {sum(f)}/{len(f)}" for group, f in sorted(fired[name].items()))
        print(f"{name}: ROC-AUC {'-' if auc is None else f'{auc:.3f}'} ({len(values[name]['genuine'])} genuine, "
              f"{len(forged)} forged values); fired: {counts}")


if __name__ == "__main__":
    main()
