"""Corpus generation, data-set adapters, a few training steps, resume, and evaluation on tiny data."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sync_defense.offline.metrics import Metrics
from sync_defense.offline.synthetic.corpus.clips import FAKE_KINDS, VALIDATION_VARIANTS, make_clip, split_faces
from sync_defense.offline.synthetic.corpus.generate import generate
from sync_defense.offline.training.datasets import prepare
from sync_defense.offline.training.evaluate import evaluate, served_verdicts, shift_sweep
from sync_defense.offline.training.train import TrainConfig, WindowSampler, predict, train
from sync_defense.offline.training.windows import load_corpus, manipulated_share, served_windows, window_label


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    generate(out, {"train": 4, "val": 4}, seed=3, workers=2)
    return out


def test_clips_are_deterministic_and_splits_share_nothing() -> None:
    a, rec_a = make_clip(5, "train", seed=1)
    b, rec_b = make_clip(5, "train", seed=1)
    assert a == b and rec_a == rec_b
    assert not set(split_faces("train")) & set(split_faces("val"))
    _, held_out = make_clip(5, "val", seed=1)
    assert held_out.voice.split("+")[1] in VALIDATION_VARIANTS and held_out.text != rec_a.text


def test_corpus_rows_point_to_mp4_and_features(corpus: Path) -> None:
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    for row in rows:
        assert (corpus / row["mp4"]).read_bytes()[4:8] == b"ftyp"  # a real mp4 container
        assert row["label"] == int(row["kind"] in FAKE_KINDS) and (row["fake_periods"] != []) == bool(row["label"])
    clips = load_corpus(corpus, "train")
    assert clips and clips[0].features.crops.dtype == np.uint8


def test_partial_fake_labels_only_the_manipulated_windows() -> None:
    record = {"fake_periods": [[2.0, 4.0]]}
    assert manipulated_share(record, 50) == 1.0 and window_label(record, 50) == 1
    assert window_label(record, 0) == 0
    assert window_label(record, 27) is None  # grazes the stretch by 8 %: no clear label
    assert window_label(record, 40) == 1  # 60 % inside


def test_sampler_makes_both_classes_including_shifted_negatives(corpus: Path) -> None:
    clips = [c for c in load_corpus(corpus, "train") if c.record["label"] == 0] or load_corpus(corpus, "train")
    sampler = WindowSampler(clips, replace(TrainConfig(), batch_size=16, shift_negative_rate=0.5), np.random.default_rng(0))
    mouths, mels, labels = sampler.batch()
    assert mouths.shape == (16, 3, 25, 64, 64) and mels.shape == (16, 1, 80, 100)
    assert 0 < labels.sum() < 16 or all(c.record["label"] == 1 for c in clips)


def test_a_few_training_steps_then_resume_then_evaluate(corpus: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(corpus=str(corpus), run_dir=str(tmp_path / "run"), out=str(tmp_path / "m.pt"), batch_size=4,
                      max_steps=2, eval_every=2, warmup_steps=1, threads=1)
    train(cfg)
    state_before = json.loads((tmp_path / "run" / "history.json").read_text())
    train(replace(cfg, max_steps=3), resume=True)  # continues at step 2, not from scratch
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert state_before[0]["step"] == 2 and history[-1]["step"] == 3
    from sync_defense.model.checkpoint import load_checkpoint

    clips = load_corpus(corpus, "val")
    windows = served_windows(clips)
    model = load_checkpoint(tmp_path / "m.pt")
    report = evaluate(clips, predict(model, windows.visual, windows.audio), windows)
    assert {"as_is", "leading_silence_trimmed", "video_recall_by_kind"} <= report.keys()
    assert 0 <= report["as_is"]["videos"]["accuracy"] <= 1
    sweep = shift_sweep(model, clips + load_corpus(corpus, "train"), shifts=(5,))
    assert sweep[5]["detected"] is None or 0 <= sweep[5]["detected"] <= 1


def test_fine_tuning_starts_from_the_given_weights_with_a_fresh_run(corpus: Path, tmp_path: Path) -> None:
    from sync_defense.model.checkpoint import init_model, load_checkpoint, save_checkpoint

    start = init_model("tiny", seed=5)
    save_checkpoint(start, tmp_path / "start.pt")
    cfg = TrainConfig(corpus=str(corpus), run_dir=str(tmp_path / "ft"), out=str(tmp_path / "ft.pt"), batch_size=4,
                      max_steps=1, eval_every=1, warmup_steps=1, learning_rate=0.0, threads=1, init_weights=str(tmp_path / "start.pt"))
    train(cfg)
    tuned = load_checkpoint(tmp_path / "ft.pt").state_dict()
    assert json.loads((tmp_path / "ft" / "history.json").read_text())[0]["step"] == 1  # a fresh run, not a resumed one
    for name, value in start.named_parameters():  # learning rate 0: the given weights, not a new seed's (BN statistics move)
        assert torch.equal(value, tuned[name]), name
    with pytest.raises(ValueError, match="not a 'base' model"):
        train(replace(cfg, model="base"))


def test_metrics_on_known_scores() -> None:
    m = Metrics.of(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
    assert (m.accuracy, m.precision, m.recall, m.roc_auc) == (0.75, 0.6667, 1.0, 1.0)


def test_served_verdicts_count_genuine_and_fakes_apart() -> None:
    lips = SimpleNamespace(lip_sync=SimpleNamespace(at_zero=0.5), evidence="lip_sync")
    answers = [SimpleNamespace(verdict=v, deciding_face=f) for v, f in
               (("real", lips), ("fake", None), ("uncertain", None), ("fake", None), ("no_face", None))]
    report = served_verdicts(answers, np.array([0, 0, 1, 1, 1]))
    assert report["verdicts"]["genuine"] == {"fake": 1, "no_face": 0, "real": 1, "uncertain": 0}
    assert report["verdicts"]["fakes"] == {"fake": 1, "no_face": 1, "real": 0, "uncertain": 1}
    assert (report["wrong"], report["uncertain"], report["no_face_or_no_speech"]) == (1, 1, 1)
    assert report["lips_at_zero"] == {"genuine": [0.5, 0.5, 0.5], "fakes": None}
    assert report["deciding_evidence"] == {"lip_sync": 1, "none": 4}


@pytest.fixture(scope="module")
def videos(corpus: Path) -> list[Path]:
    return sorted((corpus / "mp4").glob("*.mp4"))[:3]


def _copy(video: Path, to: Path) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    to.write_bytes(video.read_bytes())


def test_fakeavceleb_layout(videos: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "FakeAVCeleb"
    rows = [("id00076", "A", "real", "RealVideo-RealAudio"), ("id00076", "C", "wav2lip", "FakeVideo-RealAudio"),
            ("id00166", "D", "faceswap-wav2lip", "FakeVideo-FakeAudio")]
    root.mkdir()
    with (root / "meta_data.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "target1", "target2", "method", "category", "type", "race", "gender", "path", ""])
        for (source, category, method, kind), video in zip(rows, videos, strict=True):
            folder = f"FakeAVCeleb/{kind}/African/men/{source}"
            _copy(video, root / folder.split("/", 1)[1] / "00109.mp4")
            writer.writerow([source, "-", "-", method, category, kind, "African", "men", "00109.mp4", folder])
    prepare("fakeavceleb", root, tmp_path / "out", workers=1)
    out = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [r["label"] for r in out] == [0, 1, 1] and all(r["features"] for r in out)
    assert out[1]["fake_periods"][0][0] == 0.0 and out[0]["fake_periods"] == []


def test_lavdf_layout(videos: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "LAV-DF"
    meta = [{"file": "train/000000.mp4", "split": "train", "n_fakes": 0, "fake_periods": []},
            {"file": "dev/000001.mp4", "split": "dev", "n_fakes": 1, "fake_periods": [[0.5, 1.5]]}]
    for entry, video in zip(meta, videos, strict=False):
        _copy(video, root / entry["file"])
    (root / "metadata.json").write_text(json.dumps(meta))
    prepare("lavdf", root, tmp_path / "out", workers=1)
    out = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["split"], r["label"], r["fake_periods"]) for r in out] == [("train", 0, []), ("val", 1, [[0.5, 1.5]])]
    assert len(load_corpus(tmp_path / "out", "val")) == 1


def test_avdeepfake1m_layout(videos: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "AV-Deepfake1M"
    meta = [{"file": "lrs3/a/1.mp4", "modify_type": "real", "fake_segments": []},
            {"file": "lrs3/a/2.mp4", "modify_type": "both_modified", "fake_segments": [[1.0, 1.6]]}]
    for entry, video in zip(meta, videos, strict=False):
        _copy(video, root / "train" / entry["file"])
    (root / "train_metadata.json").write_text(json.dumps(meta))
    prepare("avdeepfake1m", root, tmp_path / "out", workers=1)
    out = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["label"]) for r in out] == [("real", 0), ("both_modified", 1)]
