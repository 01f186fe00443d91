"""A short run of the upload-path fuzzer (``python -m benchmarks.fuzz_decode --seconds N`` runs it longer)."""

from __future__ import annotations

import random
from pathlib import Path

from benchmarks.fuzz_decode import fuzz, mutate, seeds


def test_seeds_are_real_containers_of_several_kinds() -> None:
    found = seeds()
    assert set(found) == {"mp4", "mkv", "mov", "flv", "ts"} and len(set(found.values())) == len(found)


def test_mutations_are_reproducible() -> None:
    bank = list(seeds().values())
    assert mutate(bank[0], bank, random.Random(3)) == mutate(bank[0], bank, random.Random(3))


def test_mutated_uploads_are_answered_or_refused_never_crash_hang_or_blow_up(tmp_path: Path) -> None:
    report = fuzz(seconds=20, seed=1, save=tmp_path)
    assert report.cases >= 5 and report.ok, report.failures
    assert report.outcomes["refused"] > 0
