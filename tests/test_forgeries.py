"""Synchronised forgeries (sync_defense.offline.realdata.forgeries) on rendered talking faces: no server, no downloads."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from sync_defense.offline.realdata import forgeries as F
from sync_defense.offline.realdata import score
from sync_defense.offline.realdata.rewrite import lip_apertures
from sync_defense.offline.synthetic import scenes

N = 100  # 4 s of each rendered clip: enough speech for a correlation, quick to mesh


@pytest.fixture(scope="module")
def target(talking_mp4: bytes) -> F.Recording:
    """Grace Hopper saying the first sentence."""
    return F.load_recording(talking_mp4, "target", "grace_hopper", max_frames=N)


@pytest.fixture(scope="module")
def driver() -> F.Recording:
    """Another person (the astronaut) saying another sentence, with that speech: the real-mouth driver and donor."""
    audio = scenes.speech(scenes.SENTENCES[1])
    return F.load_recording(scenes.mp4(scenes.talking_video(audio, face="astronaut"), audio), "driver", "astronaut", max_frames=N)


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """Speech alone (a third sentence): the audio driver."""
    return scenes.speech(scenes.SENTENCES[2])


@pytest.fixture(scope="module")
def forged(target: F.Recording, driver: F.Recording, voice: np.ndarray) -> dict[tuple[str, str], F.Forgery]:
    made = {}
    for technique in F.TECHNIQUES:
        made[technique, "mouth"] = F.forge(technique, target, driver, np.random.default_rng(0), donor=driver)
        made[technique, "audio"] = F.forge(technique, target, voice, np.random.default_rng(0), donor=driver)
    return made


def _mouth_axes(rec: F.Recording, t: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Every region pixel of frame t in the mouth's axes, in steady mouth widths."""
    geometry = F.mouth_geometry(rec.points)[t]
    ys, xs = np.mgrid[0 : rec.frames.shape[1], 0 : rec.frames.shape[2]].astype(np.float32)
    u, v = F.to_mouth(xs, ys, geometry)
    return u / geometry[2], v / geometry[2], float(geometry[2])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    keep = ~(np.isnan(a) | np.isnan(b))
    return float(np.corrcoef(a[keep], b[keep])[0, 1])


def test_the_rendered_faces_are_meshed_on_every_frame(target: F.Recording, driver: F.Recording) -> None:
    assert target.n == driver.n == N and target.found.all() and driver.found.all()
    assert target.points.shape == (N, 478, 2) and target.frames.dtype == np.uint8
    assert np.nanstd(target.aperture) > 0.05 and np.nanstd(driver.aperture) > 0.05  # both mouths really move
    assert target.audio.shape == (N * F.SPF,) and np.abs(target.audio).max() > 0.05


@pytest.mark.parametrize("technique", F.TECHNIQUES)
@pytest.mark.parametrize("drive", ["mouth", "audio"])
def test_a_forgery_has_the_target_frames_shape_and_the_drivers_audio(forged: dict, target: F.Recording, driver: F.Recording,
                                                                      voice: np.ndarray, technique: str, drive: str) -> None:
    forgery = forged[technique, drive]
    assert forgery.frames.shape == (N, *target.frames.shape[1:]) and forgery.frames.dtype == np.uint8
    sound = driver.audio if drive == "mouth" else voice
    np.testing.assert_array_equal(forgery.audio, sound[: N * F.SPF])
    assert forgery.opening.shape == (N,) and 0 <= forgery.opening.min() < 0.2 and 0.8 < forgery.opening.max() <= 1


@pytest.mark.parametrize("technique", ["rewrite", "warp", "transplant"])
def test_only_the_mouth_region_changes(forged: dict, target: F.Recording, technique: str) -> None:
    forgery = forged[technique, "mouth"]
    changed_near, far_pixels = [], 0
    for t in range(N):
        u, v, _ = _mouth_axes(target, t)
        diff = np.abs(forgery.frames[t].astype(int) - target.frames[t]).max(axis=2)
        far = (np.abs(u) > 0.85) | (v < -0.6) | (v > 1.4)  # beyond every technique's reach
        assert far.sum() > 0.5 * far.size
        far_pixels += int(diff[far].sum())
        changed_near.append(diff[(np.abs(u) < 0.4) & (np.abs(v) < 0.3)].mean())
    assert far_pixels == 0, "pixels far from the mouth must stay bit for bit"
    assert np.mean(changed_near) > 4.0, f"the mouth itself must change (mean grey-level change {np.mean(changed_near):.1f})"
    assert np.mean(np.array(changed_near) > 1.0) > 0.5  # on most frames, not on a few


def test_the_generator_changes_the_lower_face_only_and_softens_it(forged: dict, target: F.Recording) -> None:
    look = F.GeneratorLook(0.8, np.array([1.03, 0.98, 1.0], np.float32), np.array([3.0, -2.0, 0.0], np.float32))
    generated = F.generator_lower_face(target.frames, target.points, look)
    boxes = F.face_boxes(target.points)
    upper_changes, outside_changes, lower_changes, sharp_before, sharp_after = 0, 0, [], [], []
    for t in range(N):
        nose = int(round(target.points[t, F.NOSE_TIP, 1]))
        diff = np.abs(generated[t].astype(int) - target.frames[t])
        upper_changes += int(diff[: nose - 1].sum())
        x0, x1 = int(np.floor(boxes[t, 0])) - 1, int(np.ceil(boxes[t, 2])) + 1
        outside_changes += int(diff[:, : max(x0, 0)].sum() + diff[:, x1:].sum())
        low, high = target.points[t].min(axis=0).astype(int), target.points[t].max(axis=0).astype(int)
        chin = generated[t, nose + 2 : high[1], low[0] : high[0]].astype(np.float32).mean(axis=2)
        original = target.frames[t, nose + 2 : high[1], low[0] : high[0]].astype(np.float32).mean(axis=2)
        lower_changes.append(np.abs(chin - original).mean())
        sharp_after.append(np.abs(np.diff(chin, axis=1)).mean())
        sharp_before.append(np.abs(np.diff(original, axis=1)).mean())
    assert upper_changes == 0, "the upper face and everything above it stay untouched"
    assert outside_changes == 0, "and so does everything beside the face box"
    assert np.mean(lower_changes) > 2.0
    assert np.mean(sharp_after) < 0.85 * np.mean(sharp_before), "a 96-px face rendered back is softer than the camera's"
    # The forgery is that look laid over a rewrite or a warp: its lower face differs from both, its mouth from the target.
    for base in ("rewrite", "warp"):
        assert not np.array_equal(forged["generator", "mouth"].frames, forged[base, "mouth"].frames)


def test_a_transplant_puts_the_donors_mouth_in_the_target_face(forged: dict, target: F.Recording, driver: F.Recording) -> None:
    forgery = forged["transplant", "mouth"]
    lips = []
    for t in range(N):
        u, v, _ = _mouth_axes(target, t)
        inner = (np.abs(u) < 0.3) & (np.abs(v) < 0.15)
        lips.append([forgery.frames[t][inner].mean(0), target.frames[t][inner].mean(0)])
    lips_arr = np.array(lips)
    # The mouth region's colour over time now follows the donor's mouth (its opening), not the target's own.
    forged_dark = lips_arr[:, 0].mean(1)
    assert _corr(-forged_dark, driver.aperture) > _corr(-forged_dark, target.aperture) + 0.2


@pytest.mark.parametrize("technique", F.TECHNIQUES)
@pytest.mark.parametrize("drive", ["mouth", "audio"])
def test_the_forged_mouth_follows_the_driver(forged: dict, target: F.Recording, driver: F.Recording, technique: str,
                                             drive: str) -> None:
    """The lip opening the face mesh measures on the written clip follows the driver, and the driver explains it
    better than the target's own speech does (standardised regression weights: what the forgery left of the
    original mouth, e.g. the jaw outside a transplanted mouth or the part of a warp that falls short, counts
    against it)."""
    forgery = forged[technique, drive]
    measured = lip_apertures(F.encode(target, forgery.frames, forgery.audio))[:N]
    assert not np.isnan(measured).any()
    follows = _corr(measured, forgery.opening)
    assert follows > 0.6, f"the forged mouth's opening follows its driver (r = {follows:.2f})"

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / x.std()

    weights = np.linalg.lstsq(np.column_stack([z(forgery.opening), z(target.apertures)]), z(measured), rcond=None)[0]
    assert weights[0] > weights[1] + 0.2, f"the driver, not the target's own speech, moves the mouth (weights {weights})"


def test_the_written_forgery_is_a_whole_mp4_with_the_drivers_audio(forged: dict, target: F.Recording, talking_mp4: bytes) -> None:
    forgery = forged["warp", "mouth"]
    data = F.encode(target, forgery.frames, forgery.audio)
    with av.open(io.BytesIO(data)) as container:
        assert len(container.streams.audio) == 1 and len(container.streams.video) == 1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(io.BytesIO(data)) as container:
        rate = container.streams.audio[0].rate
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    with av.open(io.BytesIO(talking_mp4)) as container:
        size = next(container.decode(video=0)).to_ndarray(format="rgb24").shape
    assert len(frames) == N and frames[0].shape == size  # the whole picture, not the region
    assert rate == F.SR and abs(sound.size / rate - N / F.FPS) < 0.1
    level = np.sqrt(np.mean(sound ** 2))
    assert level > 0.3 * np.sqrt(np.mean(forgery.audio ** 2)) > 0  # the driver's speech, not silence


def test_outside_the_region_the_frames_are_the_decoded_original(target: F.Recording, talking_mp4: bytes) -> None:
    from sync_defense.preprocessing import DEFAULT_CONFIG
    from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb

    marked = target.frames[:5].copy()
    marked[:, 0, 0] = [255, 0, 255]
    whole = F.full_frames(target, marked)
    originals = [to_rgb(f) for k, f in iter_timeline_frames(talking_mp4, DEFAULT_CONFIG) if k < 5]
    x, y = target.origin
    for frame, original in zip(whole, originals, strict=True):
        assert tuple(frame[y, x]) == (255, 0, 255)
        frame[y : y + marked.shape[1], x : x + marked.shape[2]] = original[y : y + marked.shape[1], x : x + marked.shape[2]]
        np.testing.assert_array_equal(frame, original)


def test_a_case_is_fixed_by_its_seed_and_name(target: F.Recording, voice: np.ndarray) -> None:
    one = F.forge("rewrite", target, voice, F.case_rng(0, "a"))
    again = F.forge("rewrite", target, voice, F.case_rng(0, "a"))
    other = F.forge("rewrite", target, voice, F.case_rng(1, "a"))
    np.testing.assert_array_equal(one.frames, again.frames)
    assert not np.array_equal(one.frames, other.frames)


def test_driver_openings() -> None:
    rng = np.random.default_rng(0)
    aperture = rng.uniform(0, 0.4, 50).astype(np.float32)
    aperture[[3, 10]] = np.nan
    rank = F.mouth_opening(aperture)
    keep = ~np.isnan(aperture)
    assert rank.min() == 0 and rank.max() == 1
    assert np.all(np.diff(rank[keep][np.argsort(aperture[keep])]) > 0)  # the driver's order, spread over 0..1
    # Loud speech opens, silence closes, whatever the recording level.
    tone = np.sin(np.arange(F.SR) * 2 * np.pi * 200 / F.SR).astype(np.float32)
    speech = np.concatenate([np.zeros(F.SR, np.float32), 0.5 * tone, np.zeros(F.SR, np.float32)])
    opening = F.audio_opening(speech, 75)
    assert opening[:20].max() < 0.05 and opening[30:45].min() > 0.9 and opening[55:].max() < 0.05
    np.testing.assert_allclose(F.audio_opening(0.05 * speech, 75), opening, atol=1e-5)
    wanted = F.wanted_aperture(np.array([0.0, 0.1, np.nan, 0.3]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(wanted, [0.0, 0.3])


def test_training_clips_are_cut_where_the_mouth_moves() -> None:
    still, moving = np.full(400, 0.01, np.float32), 0.2 * (1 + np.sin(np.arange(200) / 3)).astype(np.float32)
    # 16 s still, 8 s talking, 16 s still, 8 s talking: the two talking stretches, not the still ones nor half of each.
    assert F.active_windows(np.concatenate([still, moving, still, moving]), 200, 3) == [400, 1000]
    assert F.active_windows(np.concatenate([still, moving, still, moving]), 200, 1) == [400]  # the better one (first on a tie)
    assert F.active_windows(still, 200, 2) == []  # a mouth that never moves gives no clip


def test_the_validation_plan_drives_each_recording_by_other_people() -> None:
    recordings = [("a1", "a"), ("a2", "a"), ("b", "b"), ("c", "c")]
    plans = F.plan_validation(recordings)
    assert len(plans) == 4 * (1 + len(F.TECHNIQUES) * len(F.DRIVERS))
    speaker = dict(recordings)
    for plan in plans:
        if plan.technique == "control":
            assert plan.kind == F.CONTROL_KIND and plan.driver == plan.target
            continue
        assert speaker[plan.driver] != speaker[plan.target]
        assert (plan.donor is not None) == (plan.technique == "transplant")
        if plan.donor:
            assert speaker[plan.donor] != speaker[plan.target]
    kinds = {(p.kind, p.driver_kind) for p in plans}
    assert kinds == {(k, d) for k in F.KINDS for d in F.DRIVERS} | {(F.CONTROL_KIND, "none")}
    with pytest.raises(ValueError, match="another speaker"):
        F.plan_validation([("a1", "a"), ("a2", "a")])


def _entry(**changes: object) -> dict:
    good = {"case": "x-sync_warp-mouth-y", "file": "x.mp4", "label": "fake", "kind": "sync_warp", "driver": "mouth",
            "expected_offset_frames": 0.0, "sources": ["x", "y"], "licence": "MIT", "duration_s": 5.0, "notes": "n"}
    return {**good, **changes}


def test_the_manifest_check_accepts_forgeries_and_controls_and_refuses_mixups() -> None:
    control = _entry(case="x-control", kind="genuine_reencode", label="real", driver=None)
    F.validate_manifest({"fps": 25, "cases": [_entry(), control]})
    for bad in (_entry(driver=None), _entry(driver="video"), _entry(label="real"), _entry(kind="dub"),
                _entry(expected_offset_frames=None), _entry(duration_s=30.0), {**control, "driver": "audio"}):
        with pytest.raises(ValueError):
            F.validate_manifest({"fps": 25, "cases": [bad]})
    missing = _entry()
    del missing["driver"]
    with pytest.raises(ValueError, match="missing or unexpected"):
        F.validate_manifest({"fps": 25, "cases": [missing]})


def test_the_report_groups_rows_by_technique_and_driver() -> None:
    answers = {"fake": 0.9, "real": 0.1}
    rows = []
    for kind, drive, verdict in [("sync_warp", "mouth", "fake"), ("sync_warp", "audio", "real"), ("sync_rewrite", "mouth", "real"),
                                 ("genuine_reencode", None, "real")]:
        entry = _entry(kind=kind, driver=drive, label="real" if drive is None else "fake", case=f"{kind}-{drive}")
        answer = {"verdict": verdict, "fake_probability": answers[verdict], "confidence": 0.5, "av_offset_frames": 0,
                  "faces": [{}], "latency_ms": 1.0}
        rows.append(score.row(entry, answer))
    groups = score.summarise(rows)["groups"]
    assert groups["sync_warp"]["n"] == 2 and groups["sync_warp"]["fake"] == 0.5
    assert groups["driver=mouth"]["n"] == 2 and groups["driver=mouth"]["fake"] == 0.5
    assert groups["sync_warp/audio"] == {**groups["sync_warp/audio"], "n": 1, "real": 1.0, "offset_within": 1.0}
    assert groups["genuine_reencode"]["n"] == 1 and "driver=None" not in groups
    table = score.markdown(rows, score.summarise(rows), "localhost:8001")
    assert "| sync_warp/mouth | 1 | 0% | 0% | 100% | 0% | 100% | 0.900 |" in table
