"""The real-validation tooling without network: source table, archive reading, composed cases, report maths."""

from __future__ import annotations

import io
import lzma
import tarfile
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sync_defense.offline.metrics import roc_auc
from sync_defense.offline.realdata import alignment, compose, score, sources
from sync_defense.offline.realdata.compose import Case, Clip, Voice
from sync_defense.offline.realdata.sources import Source, SourceError

FLASHES_S = (1.0, 2.2, 3.2)  # irregular gaps: one clear cross-correlation peak


def _write_mp4(path: Path, pictures: list[np.ndarray], audio: np.ndarray, fps: int = 25, rate: int = 48_000) -> Path:
    """H.264 ``pictures`` (one per frame, RGB) at ``fps`` and mono AAC ``audio`` at ``rate``, both starting at 0."""
    height, width = pictures[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=rate, layout="mono")
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for i in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(audio[None, i:i + 1024].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


def _synthetic_mp4(path: Path, seconds: float = 4.0, fps: int = 25, rate: int = 48_000) -> Path:
    """Black frames with white flashes, and a 1 kHz beep starting exactly at each flash."""
    flash_frames = {round(t * fps) for t in FLASHES_S}
    audio = np.zeros(int(seconds * rate), np.float32)
    for t in FLASHES_S:
        start = round(t * rate)
        audio[start:start + rate // 25] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate // 25) / rate)
    pictures = [np.full((48, 64, 3), 255 if i in flash_frames else 0, np.uint8) for i in range(int(seconds * fps))]
    return _write_mp4(path, pictures, audio, fps, rate)


def _measured_av_lag_ms(path: Path) -> int:
    """Audio-after-picture lag in ms: beep onsets cross-correlated with flash times, decoded with plain PyAV."""
    with av.open(str(path)) as container:
        flashes = [f.time for f in container.decode(video=0) if f.to_ndarray(format="gray").mean() > 128]
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    start = frames[0].time
    samples = np.concatenate([f.to_ndarray()[0] for f in frames])
    rate = frames[0].sample_rate
    n_ms = int(len(samples) * 1000 / rate) + 2000
    loud = np.zeros(n_ms, bool)
    for ms in range(int(len(samples) * 1000 / rate)):
        loud[ms + int(round(start * 1000))] = np.abs(samples[ms * rate // 1000:(ms + 1) * rate // 1000]).max() > 0.1
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    a, v = np.zeros(n_ms), np.zeros(n_ms)
    a[onsets] = 1
    v[[int(round(t * 1000)) for t in flashes]] = 1
    kernel = np.ones(7)  # ±3 ms of jitter from the codec
    corr = np.correlate(np.convolve(a, kernel, "same"), np.convolve(v, kernel, "same"), "full")
    return int(np.argmax(corr)) - (n_ms - 1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    path = _synthetic_mp4(tmp_path_factory.mktemp("realdata") / "talk.mp4")
    return Clip("talk", path, "synthetic_speaker", "made by the test", "talk")


# --- sources ---------------------------------------------------------------------------------------------

def test_source_table_is_pinned_and_keeps_speakers_apart() -> None:
    names = [s.name for s in sources.SOURCES]
    assert len(names) == len(set(names))
    for s in sources.SOURCES:
        assert s.registry in sources.REGISTRIES and s.role in sources.ROLES and s.media in sources.MEDIA
        assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0
        assert s.licence and s.what and s.version[0].isdigit() and "*" not in s.version
    validation = {s.speaker for s in sources.SOURCES if s.role == "validation"}
    training = {s.speaker for s in sources.SOURCES if s.role == "training"}
    assert validation and training and not validation & training
    assert all(s.media == "av" for s in sources.SOURCES if s.role == "validation")


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal .deb: an ar archive whose data.tar.xz holds `files` under ./"""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    out = b"!<arch>\n"
    for name, body in (("debian-binary", b"2.0\n"), ("data.tar.xz", lzma.compress(data.getvalue()))):
        out += f"{name + '/':16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body + b"\n" * (len(body) % 2)
    return out


def test_members_are_read_from_wheels_and_debs_and_checked(tmp_path: Path) -> None:
    files = {"usr/share/demo/a.wav": b"AAAA", "usr/share/demo/b.wav": b"BB", "usr/share/demo/notes.txt": b"no"}
    (tmp_path / "cache" / "debian").mkdir(parents=True)
    (tmp_path / "cache" / "debian" / "demo-data_1.0-1_all.deb").write_bytes(_deb(files))
    (tmp_path / "cache" / "pypi").mkdir()
    with zipfile.ZipFile(tmp_path / "cache" / "pypi" / "demo_pkg-2.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("demo/clip.mp4", b"MP4")
    folder_hash = sources.tree_sha256({"a.wav": b"AAAA", "b.wav": b"BB"})
    common = {"licence": "MIT", "role": "training", "speaker": "x", "media": "audio", "what": "demo"}
    folder = Source("demo_folder", "debian", "demo-data", "1.0-1", "usr/share/demo/", folder_hash, pattern="*.wav", **common)
    single = Source("demo_file", "pypi", "demo-pkg", "2.0", "demo/clip.mp4", sources.sha256_bytes(b"MP4"), **common)

    assert [p.name for p in sources.materialise(folder, tmp_path)] == ["a.wav", "b.wav"]
    assert sources.materialise(single, tmp_path)[0].read_bytes() == b"MP4"
    (tmp_path / "media").rename(tmp_path / "old_media")
    with pytest.raises(SourceError, match="upstream file changed"):
        sources.materialise(Source(**{**single.__dict__, "sha256": "0" * 64}), tmp_path)
    with pytest.raises(SourceError, match="is not in"):
        sources.materialise(Source(**{**single.__dict__, "member": "demo/missing.mp4"}), tmp_path)


# --- composing -------------------------------------------------------------------------------------------

def test_plan_covers_every_kind_with_the_stated_offsets(clip: Clip) -> None:
    same = Clip("talk_again", clip.path, clip.speaker, clip.licence, "talk_again")
    other_container = Clip("talk_avi", clip.path, clip.speaker, clip.licence, "talk")
    stranger = Clip("other", clip.path, "someone_else", clip.licence, "other")
    voice = Voice("voice", (clip.path,), "reader", "public domain")
    cases = compose.plan_cases([clip, other_container, same, stranger], [voice])

    assert sum(c.kind == "genuine_original" for c in cases) == 4
    assert sum(c.kind == "genuine_remux" for c in cases) == 3  # one per recording, not per container
    assert sorted(c.audio for c in cases if c.kind == "swap") == ["talk", "talk_again"]
    assert {(c.video, c.audio) for c in cases if c.kind == "dub"} >= {("talk", "other"), ("other", "talk"), ("talk", "voice")}
    shifts = sorted(c.expected_offset_frames for c in cases if c.video == "talk" and c.kind == "shift")
    assert shifts == [-25.0, -20.0, -12.5, -7.5, 7.5, 12.5, 20.0, 25.0]
    assert all((c.label == "real") == c.kind.startswith("genuine") for c in cases)
    assert all(c.expected_offset_frames is None for c in cases if c.kind in ("swap", "dub"))


@pytest.mark.parametrize("kind,shift_s", [("shift", 0.5), ("shift", -0.3), ("genuine_remux", 0.0), ("genuine_reencode", 0.0)])
def test_composed_audio_moves_by_the_stated_amount(clip: Clip, tmp_path: Path, kind: str, shift_s: float) -> None:
    assert abs(_measured_av_lag_ms(clip.path)) <= 3
    entry = compose.compose(Case("case", kind, "talk", "talk", shift_s), {"talk": clip}, {}, tmp_path)
    out = tmp_path / entry["file"]
    assert abs(_measured_av_lag_ms(out) - shift_s * 1000) <= 5
    assert entry["expected_offset_frames"] == shift_s * compose.FPS
    assert abs(entry["duration_s"] - 4.0) < 0.05
    if kind != "genuine_reencode":  # the picture is never touched
        with av.open(str(clip.path)) as a, av.open(str(out)) as b:
            assert [bytes(p) for p in a.demux(video=0) if p.size] == [bytes(p) for p in b.demux(video=0) if p.size]


def test_manifest_schema(clip: Clip, tmp_path: Path) -> None:
    voice = Voice("voice", (clip.path,), "reader", "public domain")
    chosen = [c for c in compose.plan_cases([clip], [voice]) if c.kind in ("genuine_original", "dub") or c.shift_s == 1.0]
    entries = [compose.compose(c, {"talk": clip}, {"voice": voice}, tmp_path) for c in chosen]
    data = compose.manifest(entries, {"talk": {}})
    compose.validate_manifest(data)
    assert {e["file"] for e in entries} == {p.name for p in tmp_path.iterdir()}
    assert [e["kind"] for e in entries] == ["genuine_original", "shift", "dub"]
    broken = [
        {**entries[0], "label": "fake"},
        {**entries[1], "expected_offset_frames": None},
        {**entries[2], "expected_offset_frames": 3.0},
        {k: v for k, v in entries[0].items() if k != "licence"},
        {**entries[0], "duration_s": 60.0},
    ]
    for entry in broken:
        with pytest.raises(ValueError):
            compose.validate_manifest({**data, "cases": [entry]})


def test_replacement_audio_is_fitted_and_levelled() -> None:
    audio = np.ones(10, np.float32)
    assert np.array_equal(compose.shift(audio, 0.3, 10, 10), [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    assert np.array_equal(compose.shift(audio[:4], -0.2, 10, 5), [1, 1, 0, 0, 0])
    loud = compose.match_rms(np.full(8, 0.5, np.float32), np.full(8, 0.1, np.float32))
    assert np.allclose(loud, 0.1)


# --- report maths ----------------------------------------------------------------------------------------

def _row(label: str, kind: str, verdict: str, p: float | None, offset: float | None, expected: float | None) -> dict:
    entry = {"case": f"{kind}-{p}", "label": label, "kind": kind, "expected_offset_frames": expected}
    answer = None if verdict == "error" else {"verdict": verdict, "fake_probability": p, "confidence": 0.5,
                                              "av_offset_frames": offset, "faces": [{}], "latency_ms": 10.0}
    return score.row(entry, answer, "refused" if answer is None else None)


def test_summary_maths() -> None:
    rows = [
        _row("real", "genuine_original", "real", 0.10, 0, 0),
        _row("real", "genuine_remux", "real", 0.40, 3, 0),
        _row("real", "genuine_reencode", "uncertain", 0.50, -2, 0),
        _row("real", "genuine_original", "no_face", None, None, 0),
        _row("fake", "shift", "fake", 0.35, 12, 12.5),
        _row("fake", "shift", "real", 0.80, 0, -25),
        _row("fake", "dub", "fake", 0.50, 4, None),
        _row("fake", "swap", "error", None, None, None),
    ]
    s = score.summarise(rows)
    assert s["genuine"] == {"n": 4, "real": 0.5, "uncertain": 0.25, "fake": 0.0, "other": 0.25}
    assert s["fakes"]["n"] == 4 and s["fakes"]["fake"] == 0.5 and s["fakes"]["other"] == 0.25
    assert s["offset"]["genuine_within"] == 0.5  # 0 and -2 are in, 3 and no estimate are out
    assert s["offset"]["shifted_within"] == 0.5  # -0.5 frames is in, 25 frames off is out
    # fakes 0.35, 0.80, 0.50 against genuine 0.10, 0.40, 0.50: wins 1 + 3 + (2 + a tie) = 6.5 of 9
    assert s["roc_auc"] == pytest.approx(6.5 / 9)
    assert s["auc_counts"] == {"genuine": 3, "fake": 3}
    assert s["targets"] == {"no_genuine_called_fake": True, "genuine_real_at_least_80pct": False,
                            "fakes_fake_at_least_90pct": False, "offsets_all_within_tolerance": False}
    assert rows[4]["offset_error"] == -0.5 and rows[6]["offset_error"] is None and rows[7]["verdict"] == "error"
    assert roc_auc([0.1, 0.2], [0.8, 0.9]) == 1.0 and roc_auc([0.5], [0.5]) == 0.5 and roc_auc([], [1]) is None
    assert "| shift-0.35 | fake | shift | fake | 0.350 |" in score.markdown(rows, s, "localhost:8001")


def test_the_table_shows_both_tests_and_the_fired_forgery_evidence_of_the_deciding_face() -> None:
    from sync_defense.contract import FaceReport, ForgeryEvidence, LipSyncReport

    entry = {"case": "c", "label": "real", "kind": "genuine_original", "expected_offset_frames": 0.0}
    lips = LipSyncReport(verdict="shifted", lag_frames=-7, peak=0.5875, at_zero=0.3, chance_peak=0.5095, frames=200)
    face = FaceReport(track_id=1, box=[0, 0, 40, 40], first_s=0.0, last_s=8.0, fake_probability=0.978, av_offset_frames=-7,
                      av_offset_confidence=None, speaking=True, windows=8, voting_windows=8, model_probability=0.905,
                      model_offset_frames=13, model_self_test=0.31, lip_sync=lips, evidence="lip_sync", verdict="fake",
                      forgery_evidence=[ForgeryEvidence("mouth_blur", True, 0.3, 0.45, 6, [[2.0, 4.0], [5.0, 6.0]], "blurry"),
                                        ForgeryEvidence("mouth_colour", False, 3.0, 15.0, 6, [], "same skin")])
    answer = {"verdict": "fake", "fake_probability": 0.978, "confidence": 0.5, "av_offset_frames": -7, "faces": [{}, {}],
              "latency_ms": 10.0}
    rows = [score.row(entry, answer, face=face), score.row(entry, None, "refused")]
    table = score.markdown(rows, score.summarise(rows), "localhost:8001")
    assert "| lip_sync | 0.905 (13, 0.31) | shifted (-7, 0.59 / 0.51) | mouth_blur (2.0-4.0 s) | 10 |" in table
    assert "| - | - | - | - | - |" in table  # the refused file
    assert "genuine [0.3, 0.3, 0.3], fakes None" in table  # the lip test at the uploaded alignment


def test_quantiles_skip_faces_without_lips() -> None:
    assert score.quantiles([0.8, None, 0.6]) == [0.62, 0.7, 0.78]
    assert score.quantiles([None]) is None and score.lips_at_upload(None) is None


def test_rewrite_follows_the_speech_with_real_frames_in_order_where_they_fit() -> None:
    """Video Rewrite: the chosen frames' lip opening follows the new speech's loudness."""
    from sync_defense.offline.realdata.rewrite import retime, target_opening

    rng = np.random.default_rng(0)
    aperture = np.convolve(rng.random(500) ** 3, np.hanning(7), mode="same")  # a silent speaker's lips, 20 s
    t = np.arange(4 * 16_000) / 16_000
    speech = (np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32) * 0.5  # 4 syllables/s
    opening = target_opening(speech, 100)
    chosen = retime(aperture, opening, rng)
    assert chosen.shape == (100,) and chosen.min() >= 0 and chosen.max() < 500
    assert np.corrcoef(aperture[chosen], opening)[0, 1] > 0.8  # the lips open where the speech is loud
    assert np.mean(np.diff(chosen) == 1) > 0.3  # runs of consecutive source frames, not a jumble


def _noise_source() -> tuple:
    """A 12-s silent source of noise pictures with random lip openings, and two noise utterances."""
    from sync_defense.offline.realdata.rewrite import SR, Source
    from sync_defense.offline.synthetic.media import encode_mp4

    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 255, (300, 32, 32, 3), dtype=np.uint8)
    source = Source("noise", encode_mp4(pictures, 25, np.zeros(12 * SR, np.float32), SR), rng.random(300).astype(np.float32))
    utterances = [rng.standard_normal(3 * SR).astype(np.float32) for _ in range(2)]
    return source, utterances


def test_a_rewritten_clip_is_fixed_by_its_index_whatever_the_run() -> None:
    """Clips from ``--first 360`` on are held out only if clip ``i`` never depends on which clips a run makes."""
    from sync_defense.offline.realdata.rewrite import make_clip

    source, utterances = _noise_source()
    first, record = make_clip(400, [source], utterances, seed=0, split="val")
    again, record_again = make_clip(400, [source], utterances, seed=0, split="val")
    _, other = make_clip(401, [source], utterances, seed=0, split="val")
    assert first == again and record == record_again
    assert record["split"] == "val" and record["index"] == 100_400
    assert other["duration_s"] != record["duration_s"]


def test_every_rewritten_clip_is_a_forgery() -> None:
    """A real mouth re-timed to speech it never spoke is a lip-sync forgery, in sync or not: never labelled genuine."""
    from sync_defense.offline.realdata.rewrite import make_clip

    source, utterances = _noise_source()
    records = [make_clip(i, [source], utterances, seed=0)[1] for i in range(12)]
    assert {r["kind"] for r in records} >= {"rewrite_sync", "rewrite_shift"}
    assert all(r["label"] == 1 and r["fake_periods"] for r in records)

# --- container alignment ---------------------------------------------------------------------------------

def _distinct_frames_mp4(path: Path, seconds: float = 4.0, fps: int = 25, rate: int = 48_000) -> Path:
    """A square that visits a different place on every frame, over white noise: every picture and every
    stretch of sound occurs once, as frame matching and waveform correlation need."""
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    pictures = []
    for i in range(int(seconds * fps)):
        picture = np.zeros((96, 160, 3), np.uint8)
        y, x = 4 + 8 * (i // 10 % 10), 8 + 14 * (i % 10)  # 100 places: one per frame
        picture[y:y + 12, x:x + 14] = 255
        pictures.append(picture)
    return _write_mp4(path, pictures, audio, fps, rate)


@pytest.mark.parametrize("kind,shift_s", [("shift", 0.2), ("shift", -0.12), ("genuine_reencode", 0.0)])
def test_container_alignment_measures_how_far_the_sound_moved_against_the_picture(tmp_path: Path, kind: str, shift_s: float) -> None:
    source = Clip("grid", _distinct_frames_mp4(tmp_path / "grid.mp4"), "synthetic_speaker", "made by the test", "grid")
    entry = compose.compose(Case("case", kind, "grid", "grid", shift_s), {"grid": source}, {}, tmp_path)
    measured = alignment.align(source.path, tmp_path / entry["file"])
    assert abs(measured.sound_later_s - shift_s) <= 0.005
    assert measured.picture_spread_s <= 0.001  # every frame found where it is
