"""A short run of the upload-path fuzzer (``python -m benchmarks.fuzz_decode --seconds N`` runs it longer)."""

from __future__ import annotations

import multiprocessing as mp
import random
from pathlib import Path

import numpy as np
import pytest

from benchmarks.fuzz_decode import fuzz, mutate, nth_case, peak_rss_mib, seeds
from sync_defense.preprocessing import MediaError
from sync_defense.serving.preprocess_step import preprocess


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


def test_a_workers_peak_memory_is_its_own_not_its_parents() -> None:
    """The bound is on the worker: a parent holding 1 GiB (as the test suite does late in a run) does not count."""
    ballast = np.ones(2**27)  # 1 GiB, touched
    with mp.get_context("spawn").Pool(1) as pool:
        worker_mib = pool.apply(peak_rss_mib)
    assert peak_rss_mib() > ballast.nbytes / 2**20 > 4 * worker_mib


@pytest.mark.parametrize("seed, n", [(7, 13), (7, 49)])
def test_the_cases_fuzzing_found_are_refused_as_bad_videos(seed: int, n: int) -> None:
    """An unknown video codec (its codec context is None) and a packet of an undeclared stream (PyAV's
    IndexError) were internal errors; they are bad videos."""
    with pytest.raises(MediaError):
        preprocess(np.array([nth_case(seed, n)], dtype=np.object_))
