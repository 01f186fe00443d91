"""Video Rewrite: real mouths re-timed to new real speech, as training forgeries with a real mouth's look.

Bregler, Covell and Slaney's *Video Rewrite* (1997) — itself a real lip-sync forgery — reorders the
frames of a silent talking video so that the mouth follows a new soundtrack. Here each output frame
is the source frame whose lip opening (the face mesh's inner-lip aperture) matches the opening the
new speech calls for at that instant, continuing the source in order whenever the next frame fits:
real lips, real skin and a real camera, moving with real speech from other speakers. Every clip is a
forgery (label 1): ``rewrite_sync`` is a synchronised one — a real mouth made to follow speech it never
spoke, the class Wav2Lip belongs to — and its shifted (``rewrite_shift``) and re-dubbed
(``rewrite_other``) copies are desynchronised ones. (Until 2026-12-03 ``rewrite_sync`` was labelled
genuine, so the committed checkpoint learnt that such a mouth is real; see the model card.) Only
training-role material is used (``sources.py``): no validation speaker appears.

    python -m sync_defense.offline.realdata.rewrite --training build/realdata/training --corpus build/corpus --clips 150

Clip ``i`` is the same whatever the run (its random stream is seeded by its index), so clips from
``--first 360`` on, which ``make train`` does not make, are real mouths the checkpoint never saw:
``--split val`` writes them as a held-out corpus for ``training.evaluate`` and ``training.calibrate``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from tqdm import tqdm

from sync_defense.offline.synthetic.media import encode_mp4
from sync_defense.preprocessing import DEFAULT_CONFIG, MediaError, landmarks
from sync_defense.preprocessing.audio import frame_loudness_dbfs
from sync_defense.preprocessing.clips import extract_clip
from sync_defense.preprocessing.decode import iter_timeline_frames, to_rgb

SR = DEFAULT_CONFIG.audio.sample_rate
FPS = DEFAULT_CONFIG.timeline.fps
MIN_SOURCE_S = 10.0  # shorter silent videos have too few distinct mouth shapes to re-time
SEGMENT_FRAMES = 500  # a clip draws its frames from 20 s of one source (one head pose range, one light)
INDEX_BASE = 100_000  # corpus indices of rewritten clips, apart from the rendered ones
KINDS = {"rewrite_sync": 0.5, "rewrite_shift": 0.3, "rewrite_other": 0.2}
LOUDNESS_RANGE_DBFS = (-50.0, -15.0)  # mapped to closed .. wide open


def lip_apertures(data: bytes) -> np.ndarray:
    """Inner-lip opening per timeline frame of the largest face (NaN where the mesh finds none)."""
    box, out = None, []
    for k, frame in iter_timeline_frames(data, DEFAULT_CONFIG):
        rgb = to_rgb(frame)
        if k % DEFAULT_CONFIG.faces.detect_every == 0 or box is None:
            found = landmarks.detect_faces(rgb)
            box = found[0] if found else box
        points = landmarks.face_landmarks(rgb, box) if box is not None else None
        out.append(landmarks.lip_aperture(points) if points is not None else np.nan)
    return np.array(out, np.float32)


@dataclass(frozen=True)
class Source:
    name: str
    data: bytes
    aperture: np.ndarray  # per timeline frame


def target_opening(speech: np.ndarray, n_frames: int) -> np.ndarray:
    """How open the mouth should be on each frame (0..1), from the speech's loudness."""
    low, high = LOUDNESS_RANGE_DBFS
    level = frame_loudness_dbfs(np.pad(speech, (0, max(0, n_frames * (SR // FPS) - speech.size))), DEFAULT_CONFIG)[:n_frames]
    return np.convolve(np.clip((level - low) / (high - low), 0, 1), np.hanning(5) / np.hanning(5).sum(), mode="same")


def wanted_aperture(aperture: np.ndarray, opening: np.ndarray) -> np.ndarray:
    """The measured aperture at each 0..1 opening's quantile: the driver's timing in this mouth's own range."""
    return np.quantile(aperture[~np.isnan(aperture)], np.clip(opening, 0, 1))


def retime(aperture: np.ndarray, opening: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Source frame index for each output frame: the aperture at the opening's quantile, in order where it fits."""
    valid = np.flatnonzero(~np.isnan(aperture))
    wanted = wanted_aperture(aperture, opening)
    tolerance = 0.15 * (np.quantile(aperture[valid], 0.9) - np.quantile(aperture[valid], 0.1))
    j = int(rng.choice(valid))
    chosen = []
    for target in wanted:
        nxt = j + 1
        if nxt < len(aperture) and not np.isnan(aperture[nxt]) and abs(aperture[nxt] - target) <= tolerance:
            j = nxt
        else:  # jump to the closest fitting frame, preferring nearby ones (smaller head jumps)
            cost = np.abs(aperture[valid] - target) + 0.0005 * np.abs(valid - j)
            j = int(valid[np.argmin(cost)])
        chosen.append(j)
    return np.array(chosen)


def _speech(utterances: list[np.ndarray], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Utterances strung together with short pauses until ``seconds`` long."""
    parts, total = [np.zeros(int(rng.uniform(0.2, 0.5) * SR), np.float32)], 0
    while total < seconds * SR:
        utterance = utterances[rng.integers(len(utterances))]
        start = int(rng.integers(0, max(1, utterance.size - int(seconds * SR))))
        piece = utterance[start : start + int(seconds * SR)]
        parts += [piece, np.zeros(int(rng.uniform(0.1, 0.6) * SR), np.float32)]
        total += piece.size
    speech = np.concatenate(parts)[: int(seconds * SR)]
    return (speech / max(1e-3, np.abs(speech).max()) * rng.uniform(0.3, 0.9)).astype(np.float32)


def _frames(source: Source, start: int, indices: np.ndarray) -> np.ndarray:
    """The source's timeline frames at ``indices`` (all within one segment that starts at ``start``)."""
    wanted = set(indices.tolist())
    pixels = {}
    for k, frame in iter_timeline_frames(source.data, DEFAULT_CONFIG):
        if k in wanted:
            pixels[k] = to_rgb(frame)
        if k >= start + SEGMENT_FRAMES:
            break
    return np.stack([pixels[i] for i in indices])


def make_clip(index: int, sources: list[Source], utterances: list[np.ndarray], seed: int, split: str = "train") -> tuple[bytes, dict]:
    """One rewritten clip and its manifest record (the rendered corpus's fields)."""
    rng = np.random.default_rng([seed, INDEX_BASE + index])
    kind = str(rng.choice(list(KINDS), p=list(KINDS.values())))
    source = sources[rng.choice(len(sources), p=np.array([len(s.aperture) for s in sources]) / sum(len(s.aperture) for s in sources))]
    start = int(rng.integers(0, max(1, len(source.aperture) - SEGMENT_FRAMES)))
    segment = source.aperture[start : start + SEGMENT_FRAMES]
    seconds = float(rng.uniform(4.0, 8.0))
    n = int(seconds * FPS)
    speech = _speech(utterances, seconds, rng)
    frames = _frames(source, start, start + retime(segment, target_opening(speech, n), rng))
    offset_s, audio = 0.0, speech
    if kind == "rewrite_shift":
        shift = int(rng.integers(3, 21)) * int(rng.choice([-1, 1]))  # > 0: the sound comes after the mouth
        offset_s = -shift / FPS  # the corpus records the mouth's lag behind the sound
        step = abs(shift) * (SR // FPS)
        silence = np.zeros(step, np.float32)
        audio = np.concatenate([silence, speech])[: speech.size] if shift > 0 else np.concatenate([speech[step:], silence])
    elif kind == "rewrite_other":
        audio = _speech(utterances, seconds, rng)
    record = {
        "index": INDEX_BASE + index, "split": split, "kind": kind, "label": 1,
        "voice": "real", "text": "", "face": f"rewrite:{source.name}", "fps": float(FPS), "variable_frame_rate": False,
        "width": int(frames.shape[2]), "height": int(frames.shape[1]), "offset_s": offset_s,
        "fake_periods": [[0.0, seconds]], "duration_s": round(n / FPS, 3),
    }
    return encode_mp4(frames, FPS, audio[: n * (SR // FPS)], SR), record


def load_material(training: Path) -> tuple[list[Source], list[np.ndarray]]:
    items = json.loads((training / "manifest.json").read_text())["items"]
    sources = []
    for item in items:
        if item["media"] == "video" and item["duration_s"] >= MIN_SOURCE_S:
            data = (training / item["file"]).read_bytes()
            sources.append(Source(item["source"], data, lip_apertures(data)))
    utterances = [librosa.load(training / i["file"], sr=SR)[0] for i in items if i["media"] == "audio"]
    return sources, utterances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training", type=Path, default=Path("build/realdata/training"))
    parser.add_argument("--corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--clips", type=int, default=150, help="how many clips, from --first on")
    parser.add_argument("--first", type=int, default=0, help="index of the first clip")
    parser.add_argument("--split", choices=("train", "val"), default="train")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sources, utterances = load_material(args.training)
    manifest = args.corpus / "manifest.jsonl"
    done = {json.loads(r)["index"] for r in manifest.read_text().splitlines()} if manifest.exists() else set()
    (args.corpus / "mp4").mkdir(parents=True, exist_ok=True)
    (args.corpus / "features").mkdir(parents=True, exist_ok=True)
    with manifest.open("a") as rows:
        for i in tqdm(range(args.first, args.first + args.clips), desc="rewritten clips"):
            if INDEX_BASE + i in done:
                continue
            data, record = make_clip(i, sources, utterances, args.seed, args.split)
            stem = f"rewrite_{i:05d}"
            (args.corpus / "mp4" / f"{stem}.mp4").write_bytes(data)
            record.update(mp4=f"mp4/{stem}.mp4", features=None)
            try:
                clip = extract_clip(data)
            except MediaError:
                clip = None
            if clip is not None and clip.crops is not None:
                np.savez(args.corpus / "features" / f"{stem}.npz", crops=clip.crops, mel=clip.mel.astype(np.float16), speech=clip.speech)
                record["features"] = f"features/{stem}.npz"
            rows.write(json.dumps(record) + "\n")
            rows.flush()


if __name__ == "__main__":
    main()
