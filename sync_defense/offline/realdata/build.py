"""Fetch the pinned real recordings, compose the validation set and lay out the real training material.

    python -m sync_defense.offline.realdata.build --out build/realval [--training-out build/realdata/training]

The one place that downloads: every archive comes from its registry at the version pinned in
``sources.SOURCES`` and is cached, so a second run works offline and gives the same files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import wave
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import compose
from .sources import SOURCES, Source, by_name, materialise

TRAINING_RATE = 16_000
# Real speech that dubs the clips, in turn, with how many of its files (sorted) make up the voice.
DUB_VOICES = (("whisper_jfk", 1), ("pocketsphinx_librivox", 5), ("pyannote_sample", 1), ("asterisk_allison", 12))


def _clip(source: Source, root: Path) -> compose.Clip:
    return compose.Clip(source.name, materialise(source, root)[0], source.speaker, source.licence, source.recording_id)


def _voice(name: str, n_files: int, root: Path) -> compose.Voice:
    source = by_name(name)
    return compose.Voice(name, tuple(materialise(source, root)[:n_files]), source.speaker, source.licence)


def build_validation(root: Path, out: Path) -> dict:
    """Compose every case into `out` and write its manifest.json; returns the manifest."""
    validation = [s for s in SOURCES if s.role == "validation"]
    clips = {s.name: _clip(s, root) for s in validation}
    voices = {name: _voice(name, n, root) for name, n in DUB_VOICES}
    out.mkdir(parents=True, exist_ok=True)
    entries = [compose.compose(case, clips, voices, out) for case in compose.plan_cases(list(clips.values()), list(voices.values()))]
    used = sorted({name for e in entries for name in e["sources"]})
    data = compose.manifest(entries, {name: _pin(by_name(name)) for name in used})
    compose.validate_manifest(data)
    (out / "manifest.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def _pin(source: Source) -> dict:
    keep = ("registry", "package", "version", "member", "sha256", "licence", "role", "speaker", "what")
    return {k: v for k, v in asdict(source).items() if k in keep}


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def build_training(root: Path, out: Path) -> dict:
    """Training-role speech as 16 kHz mono wav and real mouth video as shipped, with manifest.json; returns it."""
    items = []
    for source in (s for s in SOURCES if s.role == "training"):
        for path in materialise(source, root):
            if source.media == "audio":
                target = out / "audio" / source.name / f"{path.stem}.wav"
                if not target.exists():
                    _write_wav(target, compose.decode_audio(path, TRAINING_RATE)[0], TRAINING_RATE)
                with wave.open(str(target)) as wav:
                    duration = wav.getnframes() / wav.getframerate()
            else:
                target = out / "video" / source.name / path.name
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                duration = compose.video_span(target)[1]
            items.append({"file": str(target.relative_to(out)), "source": source.name, "media": source.media,
                          "speaker": source.speaker, "duration_s": round(duration, 3)})
    data = {"audio_rate": TRAINING_RATE, "items": items,
            "sources": {s.name: _pin(s) for s in SOURCES if s.role == "training"}}
    (out / "manifest.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def table(entries: list[dict]) -> str:
    rows = [f"{'case':58} {'label':5} {'kind':17} {'offset':>7} {'dur_s':>6}"]
    for e in entries:
        offset = "-" if e["expected_offset_frames"] is None else f"{e['expected_offset_frames']:+g}"
        rows.append(f"{e['case']:58} {e['label']:5} {e['kind']:17} {offset:>7} {e['duration_s']:6.2f}")
    counts = Counter(e["kind"] for e in entries)
    rows.append(f"{len(entries)} cases: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/realval"), help="validation cases and manifest.json")
    parser.add_argument("--training-out", type=Path, default=Path("build/realdata/training"), help="real training material")
    parser.add_argument("--root", type=Path, default=Path("build/realdata"), help="archive cache and extracted media")
    args = parser.parse_args(argv)
    validation = build_validation(args.root, args.out)
    print(table(validation["cases"]))
    training = build_training(args.root, args.training_out)
    by_media = Counter(i["media"] for i in training["items"])
    seconds = Counter()
    for item in training["items"]:
        seconds[item["media"]] += item["duration_s"]
    print(f"training: {by_media['audio']} speech files ({seconds['audio'] / 60:.1f} min) and "
          f"{by_media['video']} mouth videos ({seconds['video'] / 60:.1f} min) in {args.training_out}")
    print(f"manifest: {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
