"""What the offset search's two rounds score, and whether any answer moves, against the full search.

    python -m benchmarks.offset_search build/realval/manifest.json build/forgeries/validation/manifest.json \
        [--onnx build/onnx] [--search 2,5 3,2 ...]

Each case is prepared once and every planned pair scored in ONNX Runtime (``step`` 1: the full
search, one round of every shift). Each ``--search step,refine`` is then replayed on those
probabilities through ``offsets.search_rounds`` itself, the pairs its rounds skip left NaN, and
decided. A search keeps the answers where no verdict, fake_probability or answered offset differs
from the full search's. ``OffsetSearchConfig``'s defaults were chosen on the model's own curves:
rerun this after retraining it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from sync_defense import contract as c
from sync_defense.contract import Answer
from sync_defense.export.model_repository import CPU_GRAPH_PARAMETERS
from sync_defense.inference.decision import DecisionConfig
from sync_defense.inference.offsets import DEFAULT_SEARCH, OffsetSearchConfig, audio_plan, search_rounds
from sync_defense.onnx_session import onnx_session
from sync_defense.serving.decision_step import decide
from sync_defense.serving.preprocess_step import preprocess
from sync_defense.serving.score_step import GraphRunner, score

FULL = replace(DEFAULT_SEARCH, step=1)


def onnx_runner(onnx_dir: Path) -> GraphRunner:
    """The served graphs in ONNX Runtime, one thread each, as the CPU profile runs them."""
    sessions = {g: onnx_session(onnx_dir / f"{g}.onnx", CPU_GRAPH_PARAMETERS) for g in c.GRAPHS}

    async def run(graph: str, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
        return sessions[graph].run([output], inputs)[0]

    return run


def prepared_cases(manifests: list[Path], run_graph: GraphRunner) -> dict[str, dict[str, np.ndarray]]:
    """Every case's ``preprocess`` and ``score`` outputs, the pairs scored by the full search."""
    cases = {}
    for manifest in manifests:
        for entry in json.loads(manifest.read_text())["cases"]:
            tensors = preprocess(np.array([(manifest.parent / entry["file"]).read_bytes()], dtype=object))
            cases[f"{manifest.parent.name}/{entry['case']}"] = {**tensors, **asyncio.run(score(tensors, run_graph, search=FULL))}
            print(f"scored {manifest.parent.name}/{entry['case']}", flush=True)
    return cases


def replayed(tensors: dict[str, np.ndarray], search: OffsetSearchConfig) -> dict[str, np.ndarray]:
    """``tensors`` with the pair probabilities ``search``'s rounds would have asked for, NaN elsewhere."""
    full = tensors[c.PAIR_FAKE_PROBABILITY]

    async def look_up(pairs: np.ndarray) -> np.ndarray:
        return full[pairs]

    probability = asyncio.run(search_rounds(tensors[c.PAIR_WINDOW], tensors[c.PAIR_SHIFT], look_up, search))
    return {**tensors, c.PAIR_FAKE_PROBABILITY: probability}


def answer(tensors: dict[str, np.ndarray], cfg: DecisionConfig) -> Answer:
    return Answer.from_json(decide(tensors, cfg)[c.RESULT][0])


def compare(cases: dict[str, dict[str, np.ndarray]], search: OffsetSearchConfig, cfg: DecisionConfig) -> dict:
    """``search`` against the full search: answers that moved, pairs and distinct audio windows scored."""
    moved: dict[str, list[str]] = {"verdict": [], "fake_probability": [], "offset": [], "a face's model offset": []}
    pairs = audio = all_pairs = all_audio = 0
    for name, tensors in cases.items():
        full, mine = answer(tensors, cfg), replayed(tensors, search)
        got = answer(mine, cfg)
        for key, was, now in (("verdict", full.verdict, got.verdict), ("fake_probability", full.fake_probability, got.fake_probability),
                              ("offset", full.av_offset_frames, got.av_offset_frames)):
            if was != now:
                moved[key].append(f"{name}: {was} -> {now}")
        moved["a face's model offset"] += [f"{name} face {a.track_id}: {a.model_offset_frames} -> {b.model_offset_frames}"
                                           for a, b in zip(full.faces, got.faces, strict=True)
                                           if a.model_offset_frames != b.model_offset_frames]
        scored = ~np.isnan(mine[c.PAIR_FAKE_PROBABILITY])
        start, window, shift = tensors[c.WINDOW_START], tensors[c.PAIR_WINDOW], tensors[c.PAIR_SHIFT]
        pairs, all_pairs = pairs + int(scored.sum()), all_pairs + len(scored)
        audio += len(audio_plan(start, window[scored], shift[scored]).starts)
        all_audio += len(audio_plan(start, window, shift).starts)
    return {"search": f"step {search.step}, refine {search.refine}", "pairs": f"{pairs} of {all_pairs}",
            "audio windows": f"{audio} of {all_audio}", "moved": moved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", type=Path, nargs="+")
    parser.add_argument("--onnx", type=Path, default=Path("build/onnx"), help="the exported graphs (make repository)")
    parser.add_argument("--search", nargs="+", default=[f"{DEFAULT_SEARCH.step},{DEFAULT_SEARCH.refine}"], help="step,refine")
    args = parser.parse_args()
    cases = prepared_cases(args.manifests, onnx_runner(args.onnx))
    cfg = DecisionConfig.from_calibration()
    for spec in args.search:
        step, refine = map(int, spec.split(","))
        print(json.dumps(compare(cases, replace(DEFAULT_SEARCH, step=step, refine=refine), cfg), indent=1))


if __name__ == "__main__":
    main()
