"""The Triton steps as plain functions: preprocess plans the pairs, score runs the graphs, decision answers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sync_defense import contract as c
from sync_defense.contract import Answer
from sync_defense.inference.decision import DecisionConfig
from sync_defense.inference.offsets import DEFAULT_SEARCH, audio_plan, estimate_offset, plan_pairs, search_rounds
from sync_defense.onnx_session import onnx_session
from sync_defense.preprocessing import DEFAULT_CONFIG as CFG
from sync_defense.preprocessing import MediaError
from sync_defense.serving.decision_step import decide
from sync_defense.serving.errors import StepError, client_message
from sync_defense.serving.preprocess_step import preprocess
from sync_defense.serving.reference import score_pairs
from sync_defense.serving.score_step import score


@pytest.fixture(scope="module")
def prepared(talking_mp4: bytes) -> dict[str, np.ndarray]:
    return preprocess(np.array([talking_mp4], dtype=object))


@pytest.fixture(scope="module")
def scored(prepared: dict[str, np.ndarray], model) -> dict[str, np.ndarray]:
    """The decision step's input: preprocess's tensors and score's (PyTorch as the graph runner)."""
    return {**prepared, c.PAIR_FAKE_PROBABILITY: score_pairs(model, prepared)}


def test_preprocess_writes_every_output_of_its_contract(prepared: dict[str, np.ndarray]) -> None:
    spec = c.step_specs(CFG)[c.PREPROCESS]
    assert set(prepared) == {t.name for t in spec.outputs}
    for t in spec.outputs:
        assert prepared[t.name].dtype == np.dtype(t.numpy_dtype), t.name
        assert prepared[t.name].ndim == len(t.dims), t.name


def test_pairs_are_every_window_then_the_offset_search(prepared: dict[str, np.ndarray]) -> None:
    window, shift, start = prepared[c.PAIR_WINDOW], prepared[c.PAIR_SHIFT], prepared[c.WINDOW_START]
    n_frames = (prepared[c.MEL].shape[1] - 1) // CFG.mels_per_frame
    at_zero = shift == 0
    assert sorted(window[at_zero]) == list(range(len(start)))
    assert len(np.unique(window[~at_zero])) == DEFAULT_SEARCH.windows
    assert set(shift[~at_zero]) <= set(range(-DEFAULT_SEARCH.max_frames, DEFAULT_SEARCH.max_frames + 1)) - {0}
    audio = start[window] + shift
    assert audio.min() >= 0 and audio.max() <= n_frames - CFG.timeline.clip_frames


def test_audio_plan_encodes_each_audio_window_once() -> None:
    plan = audio_plan(np.array([0, 25, 50]), np.array([2, 0, 1, 1]), np.array([0, 3, -5, -5]))
    assert list(plan.starts) == [3, 20, 50] and list(plan.starts[plan.row]) == [50, 3, 20, 20]


def test_only_voiced_windows_are_searched() -> None:
    pairs = plan_pairs(np.array([0, 25, 50]), np.zeros(3, int), np.array([0.0, 0.9, 0.1]), 200, 25, 0.3)
    assert set(pairs.window[pairs.shift != 0]) == {1}


def test_the_offset_search_scores_a_grid_then_the_shifts_next_to_its_best() -> None:
    """A dip between two grid shifts (at 7; 6 and 8 half way down) is found by the second round, which scores
    the odd shifts next to the first round's best only: fewer pairs than the plan, each audio window encoded once.

    Fake graphs: a mouth window's token is its start, an audio window's its start, the fusion reads the shift."""
    start = np.arange(0, 200, 25, dtype=np.int32)
    plan = plan_pairs(start, np.zeros(len(start), int), np.array([0, .5, .9, .9, .9, .9, .5, 0]), 225, CFG.timeline.clip_frames, 0.3)
    m, pixels = CFG.mels_per_frame, CFG.mouth
    rows = dict.fromkeys(c.GRAPHS, 0)

    async def graphs(graph: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        x = next(iter(inputs.values()))
        rows[graph] += len(x)
        if graph == c.VISUAL_ENCODER:
            return np.rint((x[:, 0, 0, 0, :1] * pixels.pixel_std + pixels.pixel_mean) * 255)
        if graph == c.AUDIO_ENCODER:
            return x[:, 0, 0, :1]
        shift = (inputs[c.AUDIO_TOKENS] - inputs[c.VISUAL_TOKENS]).astype(int)
        return np.select([shift == 7, np.abs(shift - 7) == 1], [0.05, 0.5], 0.9).astype(np.float32)

    crops = np.broadcast_to(start[:, None, None, None, None], (len(start), 1, 1, 1, 3)).astype(np.uint8)
    mel = np.tile(np.arange(225 * m, dtype=np.float32) / m, (CFG.audio.n_mels, 1))
    tensors = {c.MOUTH_CROPS: crops, c.MEL: mel, c.WINDOW_START: start, c.PAIR_WINDOW: plan.window, c.PAIR_SHIFT: plan.shift}
    p = asyncio.run(score(tensors, graphs))[c.PAIR_FAKE_PROBABILITY]
    scored = ~np.isnan(p)
    searched = np.unique(plan.window[plan.shift != 0])
    per_window = [set(plan.shift[scored & (plan.window == w)]) for w in searched]
    assert scored[plan.shift == 0].all() and all(s == per_window[0] for s in per_window)  # one curve, every window on it
    assert {5, 7, 9} <= per_window[0] and {1, 3, 11}.isdisjoint(per_window[0]) and rows[c.FUSION_CLASSIFIER] == scored.sum() < len(p)
    assert rows[c.AUDIO_ENCODER] == len(np.unique((start[plan.window] + plan.shift)[scored]))
    assert estimate_offset(np.arange(len(start)), plan.window, plan.shift, p).frames == 7


def test_step_1_is_the_full_search_in_one_round() -> None:
    """What ``benchmarks.offset_search`` compares the served search with."""
    plan = plan_pairs(np.arange(0, 200, 25), np.zeros(8, int), np.full(8, 0.9), 225, CFG.timeline.clip_frames, 0.3)
    asked: list[int] = []

    async def look_up(pairs: np.ndarray) -> np.ndarray:
        asked.append(len(pairs))
        return np.full(len(pairs), 0.5, np.float32)

    p = asyncio.run(search_rounds(plan.window, plan.shift, look_up, replace(DEFAULT_SEARCH, step=1)))
    assert not np.isnan(p).any() and asked == [len(p), 0]
    asked.clear()
    assert np.isnan(asyncio.run(search_rounds(plan.window, plan.shift, look_up))).any() and 0 < asked[1] < asked[0] < len(p)


def test_score_on_onnx_runtime_equals_pytorch(prepared: dict[str, np.ndarray], scored: dict[str, np.ndarray], onnx_dir: Path) -> None:
    """The step with the exported graphs (chunks of at most MAX_BATCH) gives PyTorch's pair probabilities."""
    sessions = {name: onnx_session(onnx_dir / f"{name}.onnx") for name in c.GRAPHS}
    sizes: list[int] = []

    async def onnx_graph(graph: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        sizes.append(len(next(iter(inputs.values()))))
        return sessions[graph].run([output], inputs)[0]

    got = asyncio.run(score(prepared, onnx_graph))[c.PAIR_FAKE_PROBABILITY]
    assert got.shape == prepared[c.PAIR_WINDOW].shape and max(sizes) <= c.MAX_BATCH
    # NaN alike: the pairs the offset search skipped
    np.testing.assert_allclose(got, scored[c.PAIR_FAKE_PROBABILITY], rtol=0, atol=1e-4)


def test_decision_writes_the_contract_answer(prepared: dict[str, np.ndarray], scored: dict[str, np.ndarray]) -> None:
    out = decide(scored, DecisionConfig.from_calibration())
    assert set(out) == {t.name for t in c.step_specs(CFG)[c.DECISION].outputs}
    answer = Answer.from_json(out[c.RESULT][0])
    assert out[c.VERDICT][0].decode() == answer.verdict and answer.verdict in c.VERDICTS
    assert out[c.FAKE_PROBABILITY][0] == pytest.approx(answer.fake_probability, abs=1e-6)
    assert len(answer.windows) == len(prepared[c.WINDOW_START]) and len(answer.faces) == 1



def test_the_answer_carries_each_faces_forgery_evidence_with_times(scored: dict[str, np.ndarray]) -> None:
    """The synthetic talking face's mouth is opened by the loudness itself: in sync, and too perfectly so."""
    cfg = DecisionConfig.from_calibration()
    answer = Answer.from_json(decide(scored, cfg)[c.RESULT][0])
    face = answer.faces[0]
    assert [e.name for e in face.forgery_evidence] == ["phoneme_viseme", "too_perfect_sync", "mouth_blur", "mouth_colour", "mouth_flicker"]
    too_perfect = face.forgery_evidence[1]
    assert too_perfect.fired and too_perfect.value >= too_perfect.threshold and too_perfect.spans[0][0] < too_perfect.spans[-1][1]
    assert face.fake_probability <= cfg.real_threshold  # the lips follow the speech ...
    assert answer.verdict == face.verdict != "real" and any("too_perfect_sync" in w for w in answer.warnings)  # ... too well
    assert not any(e.fired for e in face.forgery_evidence if e.name.startswith("mouth_"))  # the drawn mouth is sharp and steady


def test_the_answer_parser_refuses_fields_outside_the_contract(scored: dict[str, np.ndarray]) -> None:
    answer = json.loads(decide(scored, DecisionConfig.from_calibration())[c.RESULT][0])
    with pytest.raises(ValueError, match="unknown"):
        Answer.from_dict({**answer, "surprise": 1})
    with pytest.raises(ValueError, match="missing"):
        Answer.from_dict({k: v for k, v in answer.items() if k != "verdict"})


def test_one_error_policy() -> None:
    """Bad input is named to the client; a bug is logged with its traceback and the client gets an id, no internals."""
    assert client_message("preprocess", MediaError("no audio"))[0] == "bad video: no audio"
    assert client_message("score", StepError("visual_encoder failed: queue full")) == ("visual_encoder failed: queue full", None)
    try:
        {}["missing"]
    except KeyError as exc:
        message, log = client_message("decision", exc)
    assert "internal error" in message and "Traceback" not in message and "/" not in message
    assert "Traceback" in log and message.split("internal error ")[1].split()[0] in log


def test_more_than_one_video_per_request_is_refused() -> None:
    with pytest.raises(MediaError, match="exactly one video"):
        preprocess(np.array([b"a", b"b"], dtype=object))
