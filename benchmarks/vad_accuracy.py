"""How often each VAD calls speech on speech and on signals that are not speech, and how fast.

    python -m benchmarks.vad_accuracy

Shares of 40 ms timeline frames marked speech by webrtcvad alone, silero-vad alone and the combined
``preprocessing.vad.speech_frames``. For speech signals the share is of the frames where the clean
espeak-ng speech is audible (recall); for the others, of all frames (false alarms). Seeded: the same
table every run (timings aside).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from sync_defense.offline.synthetic.corpus.speech import Voice, synthesize
from sync_defense.preprocessing.audio import frame_loudness_dbfs
from sync_defense.preprocessing.config import DEFAULT_CONFIG, PreprocessConfig
from sync_defense.preprocessing.vad import silero_speech_probability, speech_frames, webrtc_speech

SECONDS = 10.0
SEED = 0
SENTENCES = (
    ("en", "m3", 'the small river <break time="400ms"/> never looked so green under the morning window'),
    ("de", "f2", 'gestern war der Markt offen <break time="600ms"/> und sieben Leute brachten Papier'),
    ("fr", "m1", 'le petit jardin <break time="300ms"/> suit toujours la musique simple du soir'),
)


def at_dbfs(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """``signal`` scaled to an RMS level of ``dbfs``."""
    return (signal * 10 ** (dbfs / 20) / np.sqrt(np.mean(signal.astype(np.float64) ** 2))).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1/f**exponent (0 white, 1 pink, 2 brown), by shaping a white spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def tone(hz: float, cfg: PreprocessConfig, seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(int(seconds * cfg.audio.sample_rate)) / cfg.audio.sample_rate
    return np.sin(2 * np.pi * hz * t)


def music(cfg: PreprocessConfig, seconds: float = SECONDS) -> np.ndarray:
    """Chords (C, F, G, A minor; 1 s each, repeated) of notes with six decaying harmonics and a plucked envelope."""
    chords = ((261.6, 329.6, 392.0), (349.2, 440.0, 523.3), (392.0, 493.9, 587.3), (220.0, 261.6, 329.6))
    t = np.arange(cfg.audio.sample_rate) / cfg.audio.sample_rate
    bars = [
        sum(np.sin(2 * np.pi * k * note * t) / k for note in chord for k in range(1, 7)) * np.exp(-2.5 * t)
        for chord in chords
    ]
    return np.tile(np.concatenate(bars), int(np.ceil(seconds / len(chords))))[: int(seconds * cfg.audio.sample_rate)]


def speech(cfg: PreprocessConfig) -> np.ndarray:
    """espeak-ng sentences in three voices with pauses inside and half a second of silence between."""
    gap = np.zeros(cfg.audio.sample_rate // 2, np.float32)
    rate = cfg.audio.sample_rate
    parts = [np.concatenate([synthesize(text, Voice(lang, variant, 160, 50), rate), gap]) for lang, variant, text in SENTENCES]
    return at_dbfs(np.concatenate([gap, *parts]), -23.0)


def audible(clean: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Frames where the clean speech is audible: the reference that speech recall is measured on."""
    return frame_loudness_dbfs(clean, cfg) > cfg.speech.rms_dbfs


def signals(cfg: PreprocessConfig = DEFAULT_CONFIG) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (audio, frames to score); speech is scored on its audible frames, the rest on all frames."""
    rng = np.random.default_rng(SEED)
    n = int(SECONDS * cfg.audio.sample_rate)
    clean = speech(cfg)
    everywhere = np.ones(n // cfg.samples_per_frame, bool)
    noisy = clean + at_dbfs(coloured_noise(rng, clean.size, 1.0), -33.0)  # pink noise, 10 dB SNR
    others = {
        "white noise -20 dBFS": at_dbfs(coloured_noise(rng, n, 0.0), -20.0),
        "white noise -35 dBFS": at_dbfs(coloured_noise(rng, n, 0.0), -35.0),
        "pink noise -25 dBFS": at_dbfs(coloured_noise(rng, n, 1.0), -25.0),
        "brown noise -25 dBFS": at_dbfs(coloured_noise(rng, n, 2.0), -25.0),
        "tone 220 Hz -20 dBFS": at_dbfs(tone(220.0, cfg), -20.0),
        "tone 1 kHz -20 dBFS": at_dbfs(tone(1000.0, cfg), -20.0),
        "music (chords) -20 dBFS": at_dbfs(music(cfg), -20.0),
        "silence": np.zeros(n, np.float32),
    }
    return {
        "espeak speech (recall)": (clean, audible(clean, cfg)),
        "speech + pink noise 10 dB SNR (recall)": (noisy.astype(np.float32), audible(clean, cfg)),
        **{name: (audio, everywhere) for name, audio in others.items()},
    }


def share(flags: np.ndarray, scored: np.ndarray) -> float:
    return float(flags[scored].mean())


Detector = Callable[[np.ndarray, PreprocessConfig], np.ndarray]


def ms_per_10s(fn: Detector, audio: np.ndarray, cfg: PreprocessConfig, repeats: int = 3) -> float:
    """Best of ``repeats`` wall times (after one warm-up call), in milliseconds per 10 s of audio."""
    fn(audio, cfg)
    best = min(_timed(fn, audio, cfg) for _ in range(repeats))
    return 1000.0 * best * 10.0 * cfg.audio.sample_rate / audio.size


def _timed(fn: Detector, audio: np.ndarray, cfg: PreprocessConfig) -> float:
    start = time.perf_counter()
    fn(audio, cfg)
    return time.perf_counter() - start


def main() -> None:
    cfg = DEFAULT_CONFIG
    table = signals(cfg)
    print(f"{'signal':40s} {'webrtcvad':>10s} {'silero':>8s} {'combined':>9s}")
    for name, (audio, scored) in table.items():
        webrtc = webrtc_speech(audio, cfg)
        silero = silero_speech_probability(audio, cfg) > cfg.speech.silero_threshold
        print(f"{name:40s} {share(webrtc, scored):10.2f} {share(silero, scored):8.2f} {share(speech_frames(audio, cfg), scored):9.2f}")
    audio = np.tile(table["speech + pink noise 10 dB SNR (recall)"][0], 6)
    print(f"\nms per 10 s of audio ({audio.size / cfg.audio.sample_rate:.0f} s of noisy speech, one thread, best of 3):")
    print(f"  webrtcvad {ms_per_10s(webrtc_speech, audio, cfg):.1f}  silero {ms_per_10s(silero_speech_probability, audio, cfg):.1f}"
          f"  speech_frames {ms_per_10s(speech_frames, audio, cfg):.1f}")


if __name__ == "__main__":
    main()
