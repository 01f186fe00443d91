"""One corpus clip from a seed: who speaks, what, on which face, and how it is faked."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sync_defense.preprocessing import DEFAULT_CONFIG

from ..media import encode_mp4
from .faces import augment, face_bank
from .render import HeadMotion, MouthStyle, MouthTrack, mouth_track, render_frames
from .speech import VARIANTS, random_sentence, random_voice, synthesize

SR = DEFAULT_CONFIG.audio.sample_rate
REAL_KINDS = {"real": 0.30, "real_noise": 0.07, "real_music": 0.07, "real_silence": 0.06}
FAKE_KINDS = {"shift_small": 0.16, "shift_large": 0.07, "other_utterance": 0.10, "partial": 0.10, "generator": 0.07}
KINDS = {**REAL_KINDS, **FAKE_KINDS}
FRAME_RATES = (24, 25, 25, 30, 50)
VFR_SHARE = 0.2  # clips written with variable frame timing (the model must not mistake its cadence for a fake)
SIZES = ((320, 240), (480, 360), (640, 480), (360, 480), (400, 400))
# Held out: voices, photos and (by their seeds) sentences never seen in training.
VALIDATION_VARIANTS = ("m3", "f2", "klatt3")
TRAIN_VARIANTS = tuple(v for v in VARIANTS if v not in VALIDATION_VARIANTS)


def split_faces(split: str) -> list[str]:
    """grace_hopper and LFW 0-79 train; astronaut and LFW 80-99 are held out."""
    names = sorted(face_bank())
    if split == "train":
        return [n for n in names if n == "grace_hopper" or (n.startswith("lfw_") and int(n[4:]) < 80)]
    return [n for n in names if n == "astronaut" or (n.startswith("lfw_") and int(n[4:]) >= 80)]


@dataclass(frozen=True)
class ClipRecord:
    """A manifest row: where the clip is, its label and everything needed to slice the results."""

    index: int
    split: str
    kind: str
    label: int  # 1 = fake
    voice: str
    text: str
    face: str
    fps: float  # nominal when ``variable_frame_rate``
    variable_frame_rate: bool
    width: int
    height: int
    offset_s: float  # mouth lag behind the sound for shift fakes (0 otherwise)
    fake_periods: list[list[float]]  # manipulated stretches [start_s, end_s]; empty for real clips
    duration_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _background(kind: str, speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise or music under the speech for the hard-negative kinds; silence otherwise."""
    speech_rms = np.sqrt(np.mean(speech[np.abs(speech) > 1e-3] ** 2)) if np.any(np.abs(speech) > 1e-3) else 0.05
    if kind == "real_noise":
        noise = rng.normal(0, 1, speech.size)
        if rng.random() < 0.5:  # pink-ish: integrate and high-pass a little
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(200) / 200, mode="same")
        snr_db = rng.uniform(5, 20)
    elif kind == "real_music":
        t = np.arange(speech.size) / SR
        noise = np.zeros(speech.size)
        step = int(rng.uniform(0.3, 0.7) * SR)
        for start in range(0, speech.size, step):
            root = 110 * 2 ** (rng.integers(0, 24) / 12)
            seg = slice(start, start + step)
            envelope = np.exp(-np.arange(len(t[seg])) / (0.4 * step))
            for ratio in (1.0, 1.26, 1.5, 2.0):
                noise[seg] += np.sin(2 * np.pi * root * ratio * t[seg]) * envelope
        snr_db = rng.uniform(0, 15)
    else:
        return np.zeros_like(speech)
    noise = noise / (np.sqrt(np.mean(noise**2)) + 1e-9) * speech_rms / 10 ** (snr_db / 20)
    return noise.astype(np.float32)


def _padded_speech(text: str, voice, rng: np.random.Generator, lead_max: float) -> np.ndarray:
    """Speech with random leading and trailing silence (both classes get the same distribution)."""
    speech = synthesize(text, voice, SR)
    lead = np.zeros(int(rng.uniform(0.1, lead_max) * SR), np.float32)
    tail = np.zeros(int(rng.uniform(0.2, 0.8) * SR), np.float32)
    return np.concatenate([lead, speech, tail])


def _fit(track: MouthTrack, n: int) -> MouthTrack:
    """``track`` cut or padded (closed mouth) to ``n`` frames."""
    pad = max(0, n - len(track))
    return MouthTrack(np.pad(track.opening, (0, pad))[:n], np.pad(track.width, (0, pad), constant_values=1.0)[:n])


def variable_frame_times(rng: np.random.Generator, fps: float, duration: float) -> np.ndarray:
    """Frame instants of a variable-rate video (phones, screen recordings): gaps of 0.6-1.4 nominal intervals."""
    gaps = rng.uniform(0.6, 1.4, int(2 * duration * fps) + 2) / fps
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    return times[times < duration - 1.4 / fps]


def make_clip(index: int, split: str, seed: int) -> tuple[bytes, ClipRecord]:
    """The mp4 bytes and manifest row of clip ``index``; the same arguments give the same clip."""
    rng = np.random.default_rng([seed, index, 0 if split == "train" else 1])
    kind = str(rng.choice(list(KINDS), p=np.array(list(KINDS.values())) / sum(KINDS.values())))
    voice = random_voice(rng, TRAIN_VARIANTS if split == "train" else VALIDATION_VARIANTS)
    text = random_sentence(rng, voice.language)
    speech = _padded_speech(text, voice, rng, lead_max=2.5 if kind == "real_silence" else 1.2)
    if speech.size < 2 * SR:  # at least two windows
        speech = np.pad(speech, (0, 2 * SR - speech.size))
    fps = float(rng.choice(FRAME_RATES))
    n = int(speech.size / SR * fps)
    duration = n / fps
    track = mouth_track(speech, SR, fps, n)
    offset_s, fake = 0.0, None
    if kind in ("shift_small", "shift_large"):
        frames_25 = int(rng.integers(3, 9) if kind == "shift_small" else rng.integers(10, 31)) * int(rng.choice([-1, 1]))
        offset_s = frames_25 / DEFAULT_CONFIG.timeline.fps
        track = track.delayed(int(round(offset_s * fps)))
        fake = (0.0, duration)
    elif kind in ("other_utterance", "partial"):
        other_speech = _padded_speech(random_sentence(rng, voice.language), voice, rng, lead_max=1.2)
        other = _fit(mouth_track(other_speech, SR, fps, int(other_speech.size / SR * fps)), n)
        if kind == "other_utterance":
            track, fake = other, (0.0, duration)
        else:
            length = rng.uniform(1.0, min(4.0, duration - 0.5))
            start = rng.uniform(0.0, duration - length)
            replacement = other if rng.random() < 0.5 else track.delayed(int(rng.integers(6, 16)) * int(rng.choice([-1, 1])))
            track = track.spliced(replacement, int(start * fps), int((start + length) * fps))
            fake = (start, start + length)
    elif kind == "generator":
        lag = int(rng.integers(1, 4))
        jitter = np.convolve(rng.normal(0, 0.15, n), [0.5, 0.5], mode="same")
        lagged = track.delayed(lag)
        track = MouthTrack(np.clip(lagged.opening + jitter, 0, 1), lagged.width)
        offset_s, fake = lag / fps, (0.0, duration)
    face = augment(face_bank()[str(rng.choice(split_faces(split)))], rng)
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    times = variable_frame_times(rng, fps, duration) if rng.random() < VFR_SHARE else None
    frames = render_frames(
        face, track if times is None else track.at_times(times, fps), MouthStyle.random(rng, generator_style=kind == "generator"),
        HeadMotion.random(rng, face.box[2]), fps, (width, height), float(rng.uniform(0.3, 0.55)),
        (rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.55)), times,
    )
    audio = speech + _background(kind, speech, rng)
    data = encode_mp4(frames, fps, audio / max(1.0, float(np.abs(audio).max())), SR, crf=int(rng.integers(18, 30)),
                      frame_times_s=times, preset="ultrafast")
    record = ClipRecord(
        index=index, split=split, kind=kind, label=int(kind in FAKE_KINDS), voice=voice.name, text=text, face=face.name,
        fps=fps, variable_frame_rate=times is not None, width=width, height=height, offset_s=offset_s,
        fake_periods=[list(fake)] if fake else [],
        duration_s=duration,
    )
    return data, record
