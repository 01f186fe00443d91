"""Compose the real validation cases: genuine recordings as users upload them, and fakes made from them.

The fakes only touch the audio: the picture is stream-copied bit for bit from the genuine file, so
the one thing that differs from the genuine ``remux`` control (same code path, no shift) is the
audio itself. Audio is laid on the video's clock (sample 0 = the first displayed frame, as the
server does), shifted or replaced, cut or padded with silence to the video's length, and encoded
as AAC mono 48 kHz. Replacement audio is scaled to the RMS of the track it replaces, so loudness
is no cue.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 25  # offsets are stated in frames of the model's 25 fps timeline
RATE = 48_000
SHIFTS_S = (0.3, 0.5, 0.8, 1.0)
MAX_CASE_S = 20.0  # longer recordings would have to be cut to keep scoring time reasonable; none is
KINDS = ("genuine_original", "genuine_reencode", "genuine_remux", "shift", "swap", "dub")
SIGN = "> 0: the audio comes after the mouth (delayed); < 0: before it (advanced)"


@dataclass(frozen=True)
class Clip:
    """A validation recording: a real face with its own audio."""

    name: str
    path: Path
    speaker: str
    licence: str
    recording: str


@dataclass(frozen=True)
class Voice:
    """Real speech used to dub a clip: one or more audio files played one after the other."""

    name: str
    paths: tuple[Path, ...]
    speaker: str
    licence: str


@dataclass(frozen=True)
class Case:
    """One validation file to build: the picture of `video`, the audio of `audio` shifted by `shift_s`."""

    case: str
    kind: str
    video: str
    audio: str
    shift_s: float = 0.0

    @property
    def label(self) -> str:
        return "real" if self.kind.startswith("genuine") else "fake"

    @property
    def expected_offset_frames(self) -> float | None:
        return None if self.kind in ("swap", "dub") else round(self.shift_s * FPS, 3)


def plan_cases(clips: Sequence[Clip], voices: Sequence[Voice]) -> list[Case]:
    """Every case of the set, from the clips (in table order) and the dubbing voices.

    Each file is a genuine case as shipped. One file per recording (the first) is also re-encoded,
    remuxed, shifted both ways, swapped with every other recording of the same speaker, and dubbed
    with the next recording of another speaker and with one of the voices (in turn).
    """
    cases = [Case(f"{c.name}-original", "genuine_original", c.name, c.name) for c in clips]
    bases = list({c.recording: c for c in reversed(clips)}.values())[::-1]
    for i, clip in enumerate(bases):
        cases += [Case(f"{clip.name}-reencode", "genuine_reencode", clip.name, clip.name),
                  Case(f"{clip.name}-remux", "genuine_remux", clip.name, clip.name)]
        for s in SHIFTS_S:
            cases += [Case(f"{clip.name}-delay{s}s", "shift", clip.name, clip.name, s),
                      Case(f"{clip.name}-advance{s}s", "shift", clip.name, clip.name, -s)]
        cases += [Case(f"{clip.name}-swap-{o.name}", "swap", clip.name, o.name)
                  for o in bases if o.speaker == clip.speaker and o.recording != clip.recording]
        others = [o for o in bases[i + 1:] + bases[:i] if o.speaker != clip.speaker]
        if others:
            cases.append(Case(f"{clip.name}-dub-{others[0].name}", "dub", clip.name, others[0].name))
        if voices:
            voice = voices[i % len(voices)]
            cases.append(Case(f"{clip.name}-dub-{voice.name}", "dub", clip.name, voice.name))
    return cases


# --- reading ---------------------------------------------------------------------------------------------

def video_span(path: Path) -> tuple[float, float]:
    """(first displayed time, duration) of the video stream in seconds, from the packet timestamps."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = 1 / float(stream.average_rate or FPS)
        times = [(float(p.pts * p.time_base), float((p.duration or 0) * p.time_base) or step)
                 for p in container.demux(stream) if p.pts is not None]
    if not times:
        raise ValueError(f"{path}: no timed video packets")
    start = min(t for t, _ in times)
    end = max(t + d for t, d in times)
    return start, end - start


def decode_audio(path: Path, rate: int = RATE) -> tuple[np.ndarray, float]:
    """The first audio stream as mono float32 at `rate`, and the time of its first sample in seconds."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks, start = [], None
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            if start is None and frame.time is not None:
                start = float(frame.time)
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32), start or 0.0


def audio_on_video_clock(path: Path, rate: int = RATE) -> np.ndarray:
    """The file's own audio with sample 0 at its first displayed video frame, as long as the video."""
    v0, duration = video_span(path)
    audio, a0 = decode_audio(path, rate)
    return shift(audio, a0 - v0, rate, round(duration * rate))


def voice_audio(voice: Voice, rate: int = RATE) -> np.ndarray:
    return np.concatenate([decode_audio(p, rate)[0] for p in voice.paths])


def shift(audio: np.ndarray, delay_s: float, rate: int, length: int) -> np.ndarray:
    """`audio` delayed by `delay_s` (advanced when negative), cut or padded with silence to `length` samples."""
    lag = round(delay_s * rate)
    moved = np.concatenate([np.zeros(lag, np.float32), audio]) if lag >= 0 else audio[-lag:]
    return np.pad(moved[:length], (0, max(0, length - len(moved))))


def match_rms(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    level, wanted = float(np.sqrt(np.mean(audio ** 2))), float(np.sqrt(np.mean(reference ** 2)))
    return audio if level == 0 else np.clip(audio * (wanted / level), -1, 1).astype(np.float32)


# --- writing ---------------------------------------------------------------------------------------------

def _encode_audio(container: av.container.OutputContainer, audio: np.ndarray, start_s: float, rate: int) -> None:
    stream = container.add_stream("aac", rate=rate, layout="mono")
    stream.bit_rate = 128_000
    first = round(start_s * rate)
    for i in range(0, len(audio), 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[None, i:i + 1024]), format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, first + i, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_remux(picture: Path, audio: np.ndarray, out: Path, rate: int = RATE) -> None:
    """`picture`'s video packets copied untouched, with `audio` (on that video's clock) as the only audio."""
    with av.open(str(picture)) as src:
        vin = src.streams.video[0]
        packets = [p for p in src.demux(vin) if p.dts is not None]
    origin = min(p.dts for p in packets)  # keep every timestamp >= 0; the first frame is then shown at first_s
    first_s = float((min(p.pts for p in packets) - origin) * vin.time_base)
    with av.open(str(picture)) as src, av.open(str(out), "w", format="mp4") as dst:
        vout = dst.add_stream_from_template(src.streams.video[0])
        _encode_audio(dst, audio, first_s, rate)
        for packet in packets:
            packet.pts, packet.dts = packet.pts - origin, packet.dts - origin
            packet.stream = vout
            dst.mux(packet)


def write_reencode(picture: Path, audio: np.ndarray, out: Path, rate: int = RATE) -> None:
    """`picture` re-encoded to H.264 on its own timestamps (variable frame rate kept), with AAC `audio`, as an upload would be."""
    v0, _ = video_span(picture)
    with av.open(str(picture)) as src, av.open(str(out), "w", format="mp4") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream("libx264", rate=vin.average_rate or FPS, options={"crf": "23", "preset": "veryfast"})
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        _encode_audio(dst, audio, 0.0, rate)
        for frame in src.decode(vin):
            frame.pts = round((float(frame.time) - v0) / vin.time_base)
            frame.pict_type = 0  # let x264 choose its own keyframes
            dst.mux(vout.encode(frame))
        dst.mux(vout.encode(None))


def compose(case: Case, clips: dict[str, Clip], voices: dict[str, Voice], out_dir: Path) -> dict:
    """Write one case into `out_dir` and return its manifest entry."""
    clip = clips[case.video]
    if case.kind == "genuine_original":
        out = out_dir / f"{case.case}{clip.path.suffix}"
        shutil.copyfile(clip.path, out)
    else:
        out = out_dir / f"{case.case}.mp4"
        own = audio_on_video_clock(clip.path)
        if case.kind == "dub" and case.audio in voices:
            audio = match_rms(shift(voice_audio(voices[case.audio]), 0.0, RATE, len(own)), own)
        elif case.audio != clip.name:
            audio = match_rms(shift(audio_on_video_clock(clips[case.audio].path), 0.0, RATE, len(own)), own)
        else:
            audio = shift(own, case.shift_s, RATE, len(own))
        (write_reencode if case.kind == "genuine_reencode" else write_remux)(clip.path, audio, out)
    other = voices.get(case.audio) or clips[case.audio]
    duration = video_span(out)[1]
    if duration > MAX_CASE_S:
        raise ValueError(f"{case.case} lasts {duration:.1f} s: cut it into pieces of at most {MAX_CASE_S:.0f} s")
    return {
        "case": case.case, "file": out.name, "label": case.label, "kind": case.kind,
        "expected_offset_frames": case.expected_offset_frames,
        "sources": sorted({clip.name, other.name}),
        "licence": " | ".join(dict.fromkeys([clip.licence, other.licence])),
        "duration_s": round(duration, 3),
        "notes": _notes(case, clip, other),
    }


def _notes(case: Case, clip: Clip, other: Clip | Voice) -> str:
    if case.kind == "genuine_original":
        return "the file exactly as the package ships it"
    if case.kind == "genuine_reencode":
        return "picture re-encoded to H.264 (crf 23) on its own timestamps, audio to AAC mono 48 kHz"
    if case.kind == "genuine_remux":
        return "picture stream-copied, audio re-encoded with no shift: the control for the fakes"
    if case.kind == "shift":
        way = "delayed" if case.shift_s > 0 else "advanced"
        return f"audio {way} by {abs(case.shift_s)} s, cut or padded with silence to the video"
    who = "the same speaker, another recording" if case.kind == "swap" else f"speaker {other.speaker}"
    return f"audio replaced by {other.name} ({who}), cut or padded with silence, scaled to the original's RMS"


def manifest(entries: list[dict], sources: dict[str, dict]) -> dict:
    """The manifest: conventions, the pinned sources by name, and one entry per case."""
    return {
        "fps": FPS, "offset_sign": SIGN, "audio": f"AAC mono {RATE} Hz (except genuine_original)",
        "max_case_s": MAX_CASE_S, "cut": f"no recording is longer than {MAX_CASE_S:.0f} s, so none was cut",
        "sources": sources, "cases": entries,
    }


CASE_KEYS = frozenset({"case", "file", "label", "kind", "expected_offset_frames", "sources", "licence", "duration_s", "notes"})


def validate_cases(data: dict, keys: frozenset[str], problem: Callable[[dict], str | None]) -> None:
    """Raise ValueError unless ``data`` is a manifest ``score`` can use: fps 25, cases named once with exactly
    ``keys``, each with a duration, sources and a licence, and none of which ``problem`` finds fault with."""
    if data.get("fps") != FPS or not isinstance(data.get("cases"), list) or not data["cases"]:
        raise ValueError("a manifest needs fps == 25 and a non-empty list of cases")
    names = set()
    for entry in data["cases"]:
        if set(entry) != keys:
            raise ValueError(f"{entry.get('case')}: keys {sorted(set(entry) ^ keys)} are missing or unexpected")
        if entry["case"] in names:
            raise ValueError(f"{entry['case']}: listed twice")
        names.add(entry["case"])
        if (complaint := problem(entry)) is not None:
            raise ValueError(f"{entry['case']}: {complaint}")
        if not 0 < entry["duration_s"] <= MAX_CASE_S or not entry["sources"] or not entry["licence"]:
            raise ValueError(f"{entry['case']}: duration, sources and licence must be given")


def _composed_case_problem(entry: dict) -> str | None:
    if entry["kind"] not in KINDS or entry["label"] != ("real" if entry["kind"].startswith("genuine") else "fake"):
        return f"kind {entry['kind']!r} and label {entry['label']!r} do not agree"
    offset = entry["expected_offset_frames"]
    if (offset is None) != (entry["kind"] in ("swap", "dub")) or (entry["label"] == "real" and offset not in (0, None)):
        return f"expected offset {offset!r} does not fit kind {entry['kind']!r}"
    return None


def validate_manifest(data: dict) -> None:
    """Raise ValueError unless ``data`` is a manifest of composed cases that ``score`` can use."""
    validate_cases(data, CASE_KEYS, _composed_case_problem)
