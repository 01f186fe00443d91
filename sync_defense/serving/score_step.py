"""Ensemble step 2: the fake probability of every (mouth window, audio shift) pair.

One upload brings faces x windows plus the offset search's shifted pairs — a few dozen for a
short clip, hundreds for a long one with several faces — more than the graphs' ``MAX_BATCH`` and
a different count every time. The rows are cut into chunks of at most ``MAX_BATCH`` and the
chunks sent as separate requests at once, so Triton's dynamic batcher merges them with other
uploads' chunks. Each mouth window and each distinct audio window is encoded once, however many
pairs share it. The offset search's shifted pairs are scored in two rounds, the second chosen from
the first's probabilities (``inference.offsets.search_rounds``). ``run_graph`` is the one thing
that differs between Triton (BLS) and the PyTorch reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import numpy as np

from sync_defense import contract as c
from sync_defense.inference.offsets import DEFAULT_SEARCH, OffsetSearchConfig, audio_plan, search_rounds
from sync_defense.preprocessing import DEFAULT_CONFIG, PreprocessConfig
from sync_defense.preprocessing.windows import audio_windows, normalise_crops

from .errors import StepError

# (graph name, {input name: rows}, output name) -> the output's rows
GraphRunner = Callable[[str, dict[str, np.ndarray], str], Awaitable[np.ndarray]]
CONCURRENT_CHUNKS = 2  # per graph and upload: bounds the float32 copies held at once


async def _map(run_graph: GraphRunner, graph: str, rows: int, inputs: Callable[[slice], dict[str, np.ndarray]], output: str,
               max_batch: int) -> np.ndarray:
    """``output`` of ``graph`` for rows ``0 .. rows-1``, chunk by chunk; ``inputs(slice)`` builds a chunk."""
    if not rows:
        return np.zeros(0, np.float32)
    limit = asyncio.Semaphore(CONCURRENT_CHUNKS)

    async def chunk(s: slice) -> np.ndarray:
        async with limit:
            return await run_graph(graph, {k: np.ascontiguousarray(v) for k, v in inputs(s).items()}, output)

    return np.concatenate(await asyncio.gather(*(chunk(slice(i, i + max_batch)) for i in range(0, rows, max_batch))))


def check_pairs(n_windows: int, pair_window: np.ndarray, pair_shift: np.ndarray, pre: PreprocessConfig = DEFAULT_CONFIG,
                search: OffsetSearchConfig = DEFAULT_SEARCH) -> None:
    """Refuse what ``preprocess`` can never send, before a graph runs: Triton 2.51 has no per-model
    access control, so a client can call ``score`` directly (32000 pairs for 0.5 MB cost minutes)."""
    max_windows = pre.faces.max_faces * pre.limits.max_windows_per_face
    max_pairs = max_windows + pre.faces.max_faces * search.windows * 2 * search.max_frames
    if n_windows > max_windows or len(pair_window) > max_pairs:
        raise StepError(f"score takes at most {max_windows} windows and {max_pairs} pairs "
                        f"(got {n_windows} and {len(pair_window)})")
    if len(pair_window) != len(pair_shift) or (len(pair_window) and (
            pair_window.min() < 0 or pair_window.max() >= n_windows or np.abs(pair_shift).max() > search.max_frames)):
        raise StepError("score's pairs must name its windows and shifts within the offset search")


async def score(tensors: Mapping[str, np.ndarray], run_graph: GraphRunner, pre: PreprocessConfig = DEFAULT_CONFIG,
                max_batch: int = c.MAX_BATCH, search: OffsetSearchConfig = DEFAULT_SEARCH) -> dict[str, np.ndarray]:
    """``PAIR_FAKE_PROBABILITY`` for the pairs of one upload's ``preprocess`` output."""
    crops, mel = tensors[c.MOUTH_CROPS], tensors[c.MEL]
    pair_window, pair_shift = tensors[c.PAIR_WINDOW], tensors[c.PAIR_SHIFT]
    check_pairs(len(crops), pair_window, pair_shift, pre, search)
    probability = await _pair_probability(run_graph, crops, mel, tensors[c.WINDOW_START], pair_window, pair_shift, pre, max_batch, search)
    return {c.PAIR_FAKE_PROBABILITY: probability.reshape(-1).astype(np.float32)}


async def _pair_probability(run_graph: GraphRunner, crops: np.ndarray, mel: np.ndarray, window_start: np.ndarray,
                            pair_window: np.ndarray, pair_shift: np.ndarray, pre: PreprocessConfig, max_batch: int,
                            search: OffsetSearchConfig) -> np.ndarray:
    """The sync model's probability of each pair the offset search's rounds ask for (``offsets.search_rounds``;
    NaN for the others): the mouth windows encoded once, alongside the first round's audio, then the fusion."""
    if not len(pair_window):
        return np.zeros(0, np.float32)
    visual = asyncio.ensure_future(_map(run_graph, c.VISUAL_ENCODER, len(crops), lambda s: {c.MOUTHS: normalise_crops(crops[s], pre)},
                                        c.VISUAL_TOKENS, max_batch))
    audio = _AudioTokens(run_graph, mel, pre, max_batch)

    async def fuse(pairs: np.ndarray) -> np.ndarray:
        plan = audio_plan(window_start, pair_window[pairs], pair_shift[pairs])
        visual_tokens, audio_tokens = await asyncio.gather(visual, audio.of(plan.starts))
        return (await _map(
            run_graph, c.FUSION_CLASSIFIER, len(pairs),
            lambda s: {c.VISUAL_TOKENS: visual_tokens[pair_window[pairs[s]]], c.AUDIO_TOKENS: audio_tokens[plan.row[s]]},
            c.WINDOW_FAKE_PROBABILITY, max_batch,
        )).reshape(-1)

    return await search_rounds(pair_window, pair_shift, fuse, search)


class _AudioTokens:
    """The audio encoder's tokens by window start: each audio window is encoded once, by the first round that needs it."""

    def __init__(self, run_graph: GraphRunner, mel: np.ndarray, pre: PreprocessConfig, max_batch: int) -> None:
        self.run_graph, self.mel, self.pre, self.max_batch = run_graph, mel, pre, max_batch
        self.starts = np.zeros(0, np.int64)  # sorted
        self.tokens: np.ndarray | None = None  # one row per start

    async def of(self, starts: np.ndarray) -> np.ndarray:
        """The tokens of the audio windows at ``starts`` (timeline frames), encoding those not encoded yet."""
        new = np.setdiff1d(starts, self.starts)
        if new.size:
            tokens = await _map(self.run_graph, c.AUDIO_ENCODER, len(new), lambda s: {c.MELS: audio_windows(self.mel, new[s], self.pre)},
                                c.AUDIO_TOKENS, self.max_batch)
            order = np.argsort(np.concatenate([self.starts, new]))
            self.starts = np.concatenate([self.starts, new])[order]
            self.tokens = (tokens if self.tokens is None else np.concatenate([self.tokens, tokens]))[order]
        return self.tokens[np.searchsorted(self.starts, starts)]
