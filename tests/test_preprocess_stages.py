"""The preprocessing stage benchmark runs end to end on a real mp4 and prints its table."""

from __future__ import annotations

import math

from benchmarks.preprocess_stages import STAGES, stages, table


def test_every_stage_is_timed(talking_mp4: bytes) -> None:
    row = stages(talking_mp4, repeats=1)
    assert row["frames"] > 100 and row["skimmed"] is False
    assert all(math.isfinite(row[s]) for s in STAGES)
    assert all(row[s] > 0 for s in ("decode", "decode_rgb", "audio", "whole"))
    lines = table({"talking.mp4": row}).splitlines()
    assert len(lines) == 3 and lines[2].startswith("| talking.mp4 | ") and lines[2].count("|") == len(STAGES) + 4
