"""Forgery evidence that sync alone cannot give: missed lip closures, too-perfect sync, the mouth's texture."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from sync_defense.inference.evidence import (
    DEFAULT_EVIDENCE,
    closures,
    face_evidence,
    pasted_evidence,
    phoneme_viseme,
    texture_evidence,
    too_perfect_sync,
)
from sync_defense.inference.lipsync import lip_sync
from sync_defense.offline.synthetic import scenes
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video
from sync_defense.preprocessing.audio import frame_loudness_dbfs
from sync_defense.preprocessing.phones import Phones, decode_phones
from sync_defense.preprocessing.texture import TEXTURE, texture
from sync_defense.preprocessing.vad import speech_frames

FPS = DEFAULT_CONFIG.timeline.fps
SR = DEFAULT_CONFIG.audio.sample_rate
CFG = DEFAULT_EVIDENCE
# Said one after the other: the first sentence has no M, B or P, the second starts and ends with one.
WITHOUT, WITH = "Yesterday the water was green and clear.", "My baby picked up the map."


def articulating(n: int) -> np.ndarray:
    """A speaking mouth: the opening swings between 0.15 and 0.35 every 8 frames, never shut."""
    return (0.25 + 0.1 * np.sin(2 * np.pi * np.arange(n) / 8)).astype(np.float32)


def bilabials(*frames: int) -> Phones:
    """One M, B or P of 3 decoder frames (30 ms) at each timeline frame, with vowels between."""
    labels, starts = [], []
    for i, k in enumerate(frames):
        labels += ["AA", "MBP"[i % 3]]
        starts += [k / FPS - 0.1, k / FPS]
    starts = np.array(starts)
    return Phones(tuple(labels), starts, starts + np.where(np.array(labels) == "AA", 0.1, 0.03))


def test_a_missed_closure_fires_and_a_present_one_does_not() -> None:
    at = [20, 40, 60, 80, 100]
    phones = bilabials(*at)
    opening = articulating(130)
    shut = opening.copy()
    shut[at] = 0.02  # the lips close on each bilabial
    assert [closed for *_, closed in closures(shut, phones, FPS)] == [True] * 5
    kept = phoneme_viseme(shut, phones, FPS)
    assert not kept.fired and kept.value == 0.0 and kept.support == 5 and kept.spans == []
    missed = phoneme_viseme(opening, phones, FPS)
    assert missed.fired and missed.value == 1.0 and missed.support == 5
    assert missed.spans == [[(k - 1) / FPS, (k + 2) / FPS] for k in at]  # each missed closure with its time, +-1 frame
    assert "5 of 5" in missed.summary
    one_late = shut.copy()
    one_late[at] = opening[at]
    one_late[[k + 1 for k in at]] = 0.02  # shut one frame after the decoded phone: within the margin
    assert not phoneme_viseme(one_late, phones, FPS).fired


def test_no_closure_is_called_for_where_the_lips_are_not_measured_or_do_not_move() -> None:
    phones = bilabials(20, 40, 60, 80, 100)
    unmeasured = articulating(130)
    unmeasured[:70] = np.nan
    assert len(closures(unmeasured, phones, FPS)) == 2
    listener = np.full(130, 0.08, np.float32)  # a still, slightly open mouth while someone else speaks
    result = phoneme_viseme(listener, phones, FPS)
    assert closures(listener, phones, FPS) == [] and not result.fired and result.value is None


def test_too_few_closures_cannot_fire() -> None:
    phones = bilabials(20, 40, 60)
    result = phoneme_viseme(articulating(130), phones, FPS)
    assert result.value == 1.0 and result.support == 3 < CFG.min_closures and not result.fired


def test_pocketsphinx_finds_bilabials_where_a_word_with_m_b_or_p_is_spoken() -> None:
    audio = scenes.speech(WITHOUT, WITH)
    pad, first = 0.3, len(scenes.speech(WITHOUT)) / SR  # the second sentence starts where the first one's speech() ends
    phones = decode_phones(audio, DEFAULT_CONFIG, [(0, len(audio) // DEFAULT_CONFIG.samples_per_frame)])
    starts, _ = phones.of(frozenset("MBP"))
    end = len(audio) / SR - pad
    assert len(phones.labels) > 20 and len(starts) >= 2
    assert all(first - 0.1 <= t <= end + 0.1 for t in starts), (starts, first, end)  # none in the sentence without
    assert starts.min() <= first + 0.25  # "My" opens the sentence ...
    assert starts.max() >= end - 0.8  # ... and "map" closes it


def test_too_perfect_sync_fires_on_a_mouth_driven_by_the_loudness() -> None:
    audio = scenes.speech(scenes.SENTENCES[0])
    loudness = frame_loudness_dbfs(audio, DEFAULT_CONFIG)
    assert speech_frames(audio, DEFAULT_CONFIG).mean() > 0.5
    driven = np.clip((np.fmax(loudness, -60.0) + 50.0) / 35.0, 0.0, 1.0).astype(np.float32)  # opened by the loudness itself
    puppet = lip_sync(driven, loudness)
    fired = too_perfect_sync(puppet, driven, FPS)
    assert puppet.verdict == "in_sync" and fired.fired and fired.value >= CFG.too_perfect_correlation
    assert fired.spans == [[0.0, round(len(driven) / FPS, 3)]] and fired.support == len(driven)
    # A speaker's lips follow the loudness loosely: open ahead of the sound, some syllables louder than wide.
    rng = np.random.default_rng(0)
    speaker = (0.6 * np.roll(driven, 2) + 0.4 * rng.uniform(0, 1, len(driven)) * (driven > 0)).astype(np.float32)
    loose = lip_sync(speaker, loudness)
    assert loose.verdict == "in_sync" and not too_perfect_sync(loose, speaker, FPS).fired
    assert too_perfect_sync(None, driven, FPS).value is None


def test_texture_measures_a_blurred_recoloured_flickering_mouth() -> None:
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    upper = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    blurred = np.ascontiguousarray(np.repeat(np.repeat(sharp[::4, ::4], 4, axis=0), 4, axis=1))  # a 16-px mouth scaled up
    tinted = np.clip(sharp.astype(int) + [40, 0, -40], 0, 255).astype(np.uint8)
    base = texture(sharp, upper, (sharp, upper))
    assert base[TEXTURE.index("skin_change")] == 0.0 and base[TEXTURE.index("upper_change")] == 0.0
    assert texture(blurred, upper, None)[0] < 0.2 * base[0]
    assert texture(tinted, upper, None)[1] > base[1] + 10
    assert texture(sharp, upper, None)[2:].tolist() == [pytest.approx(np.nan, nan_ok=True)] * 2
    flicker = texture(sharp, upper, (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), upper))
    assert flicker[2] > 50 and flicker[3] == 0.0


def test_texture_evidence_fires_on_a_two_second_run_and_says_when() -> None:
    rows = np.tile(np.array([[0.8, 4.0, 1.5, 1.0]], np.float32), (250, 1))  # 10 s of a genuine-looking mouth
    quiet = texture_evidence(rows, FPS)
    assert [e.name for e in quiet] == ["mouth_blur", "mouth_colour", "mouth_flicker"] and not any(e.fired for e in quiet)
    one_second = rows.copy()
    one_second[100:125, 0] = 0.1
    assert not texture_evidence(one_second, FPS)[0].fired  # one blurred second is not enough ...
    assert texture_evidence(one_second, FPS)[0].spans == [[4.0, 5.0]]  # ... but it is reported
    blurred = rows.copy()
    blurred[100:150, 0] = 0.1
    blurred[200:225, 1] = 20.0  # one second past the colour threshold; its 2-s run (mean 12) is not
    evidence = {e.name: e for e in texture_evidence(blurred, FPS)}
    assert evidence["mouth_blur"].fired and evidence["mouth_blur"].value == pytest.approx(0.1)
    assert evidence["mouth_blur"].spans == [[4.0, 6.0]] and evidence["mouth_blur"].support == 10
    assert not evidence["mouth_colour"].fired and evidence["mouth_colour"].spans == [[8.0, 9.0]]
    unmeasured = np.full_like(rows, np.nan)
    assert all(e.value is None and not e.fired for e in texture_evidence(unmeasured, FPS))


def test_pasted_evidence_judges_the_sampled_frames_per_second_and_says_when() -> None:
    every = DEFAULT_CONFIG.texture.artefact_every
    frames = np.arange(0, 250, every)
    genuine = np.full(len(frames), 0.05)
    quiet = pasted_evidence(frames, genuine, 250, FPS)
    assert quiet.name == "mouth_pasted" and not quiet.fired and quiet.support == 10 and quiet.spans == []
    pasted = genuine.copy()
    pasted[(frames >= 50) & (frames < 100)] = 0.9  # seconds 2-4
    evidence = pasted_evidence(frames, pasted, 250, FPS)
    assert evidence.fired and evidence.value == pytest.approx(0.9) and evidence.spans == [[2.0, 4.0]]
    one_second = genuine.copy()
    one_second[(frames >= 50) & (frames < 75)] = 0.9
    assert not pasted_evidence(frames, one_second, 250, FPS).fired  # one second is reported, not enough to fire
    sparse = pasted_evidence(frames[::3], pasted[::3], 250, FPS)  # 1-2 sampled frames a second: not measured
    assert sparse.value is None and not sparse.fired


def remade_lower_face(frames: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """What a Wav2Lip-class generator leaves: from ``start_s`` to ``end_s`` the lower face (``talking_video``
    puts the face 0.45 of the frame wide, centred at 0.45 of its height) re-made 96 px across and scaled back."""
    out = frames.copy()
    height, width = frames.shape[1:3]
    face = int(scenes.FACE_WIDTH_FRAC * width)
    x0, y0 = width // 2 - face // 2, int(scenes.FACE_CENTRE_FRAC[1] * height)
    for k in range(round(start_s * FPS), round(end_s * FPS)):
        lower = frames[k, y0 : y0 + 3 * face // 4, x0 : x0 + face]
        small = cv2.resize(lower, (96, round(96 * lower.shape[0] / face)), interpolation=cv2.INTER_AREA)
        out[k, y0 : y0 + lower.shape[0], x0 : x0 + face] = cv2.resize(small, (face, lower.shape[0]), interpolation=cv2.INTER_LINEAR)
    return out


def test_a_mouth_remade_at_96_px_is_found_blurred_where_it_was_pasted(sentence_audio: np.ndarray) -> None:
    frames = remade_lower_face(scenes.talking_video(sentence_audio, tile=(640, 480)), 2.0, 4.0)
    video = preprocess_video(scenes.mp4(frames, sentence_audio))
    evidence = {e.name: e for e in texture_evidence(video.textures[0], FPS)}
    assert evidence["mouth_blur"].fired and evidence["mouth_blur"].spans == [[2.0, 4.0]], evidence["mouth_blur"]
    assert not evidence["mouth_colour"].fired and not evidence["mouth_flicker"].fired


def test_every_trace_is_reported_for_each_face() -> None:
    opening = articulating(130)
    lips = lip_sync(opening, np.where(opening > 0.25, -20.0, -40.0))
    rows = np.tile(np.array([[0.8, 4.0, 1.5, 1.0]], np.float32), (130, 1))
    names = [e.name for e in face_evidence(opening, rows, bilabials(20, 40, 60, 80, 100), lips, FPS)]
    assert names == ["phoneme_viseme", "too_perfect_sync", "mouth_blur", "mouth_colour", "mouth_flicker"]
    stricter = replace(CFG, missed_closure_share=1.1)  # a threshold is one field: fitting it is a one-line change
    assert not phoneme_viseme(opening, bilabials(20, 40, 60, 80, 100), FPS, stricter).fired


def _case(label: str, kind: str, traces: dict[str, tuple[float, bool]], other_face: bool = False) -> dict:
    """A report row (``offline.realdata.score``) whose deciding face (track 1) has ``traces``: name -> (value, fired)."""
    face = {"track_id": 1, "forgery_evidence": [{"name": n, "value": v, "fired": f} for n, (v, f) in traces.items()]}
    faces = [face] + ([{"track_id": 2, "forgery_evidence": [{"name": "too_perfect_sync", "value": 5.0, "fired": True}]}]
                      if other_face else [])
    return {"case": f"{kind}-{len(traces)}-{id(traces)}", "label": label, "kind": kind,
            "answer": {"deciding_track_id": 1, "faces": faces}}


def test_evidence_separation_reads_the_deciding_face_of_genuine_and_synchronised_cases(tmp_path, monkeypatch, capsys) -> None:
    from benchmarks import evidence_separation

    rows = [
        _case("real", "genuine_original", {"too_perfect_sync": (0.3, False), "mouth_blur": (1.2, False)}, other_face=True),
        _case("real", "genuine_reencode", {"too_perfect_sync": (0.4, False), "mouth_blur": (1.0, False)}),
        _case("fake", "sync_warp", {"too_perfect_sync": (0.9, True), "mouth_blur": (0.3, True)}),
        _case("fake", "sync_warp", {"too_perfect_sync": (0.85, True), "mouth_blur": (0.35, True)}),
        _case("fake", "shift", {"too_perfect_sync": (-0.5, False), "mouth_blur": (9.0, False)}),  # desync: not counted
    ]
    (tmp_path / "report.json").write_text(json.dumps({"rows": rows}))
    monkeypatch.setattr("sys.argv", ["evidence_separation", str(tmp_path)])
    evidence_separation.main()
    out = capsys.readouterr().out
    # a blurrier mouth is the forged one: mouth_blur's lower values count as more forged
    assert "mouth_blur: ROC-AUC 1.000 (2 genuine, 2 forged values); fired: genuine 0/2, sync_warp 2/2" in out
    assert "too_perfect_sync: ROC-AUC 1.000 (2 genuine, 2 forged values); fired: genuine 0/2, sync_warp 2/2" in out
