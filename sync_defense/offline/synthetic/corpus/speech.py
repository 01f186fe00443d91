"""Speech from espeak-ng: many voices, speeds, pitches and languages, sentences with pauses."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import librosa
import numpy as np

# A small vocabulary per language; sentences are random word sequences (the model hears rhythm
# and phonemes, not meaning), so sentences never repeat between splits.
VOCABULARY = {
    "en": "the a small river morning house people never always bring quickly green window under letter "
          "yesterday market open seven garden believe paper around music simple station follow water "
          "evening summer table better number question picture mountain together careful".split(),
    "de": "der die das kleine Fluss Morgen Haus Leute niemals immer bringen schnell grün Fenster unter Brief "
          "gestern Markt offen sieben Garten glauben Papier Musik einfach Bahnhof folgen Wasser Abend".split(),
    "fr": "le la petit rivière matin maison gens jamais toujours apporter vite vert fenêtre sous lettre hier "
          "marché ouvert sept jardin croire papier musique simple gare suivre eau soir été table".split(),
    "es": "el la pequeño río mañana casa gente nunca siempre traer rápido verde ventana bajo carta ayer "
          "mercado abierto siete jardín creer papel música sencillo estación seguir agua tarde verano".split(),
    "it": "il la piccolo fiume mattina casa gente mai sempre portare veloce verde finestra sotto lettera ieri "
          "mercato aperto sette giardino credere carta musica semplice stazione seguire acqua sera estate".split(),
}
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")


@dataclass(frozen=True)
class Voice:
    language: str
    variant: str
    words_per_minute: int
    pitch: int

    @property
    def name(self) -> str:
        """espeak-ng's ``-v`` argument; an empty variant is the language's default voice."""
        return f"{self.language}+{self.variant}" if self.variant else self.language


def random_voice(rng: np.random.Generator, variants: tuple[str, ...]) -> Voice:
    return Voice(
        language=str(rng.choice(list(VOCABULARY))),
        variant=str(rng.choice(variants)),
        words_per_minute=int(rng.integers(120, 200)),
        pitch=int(rng.integers(20, 80)),
    )


def random_sentence(rng: np.random.Generator, language: str) -> str:
    """3-18 words with a chance of pauses (SSML breaks of 0.2-0.9 s) between phrases."""
    words = list(rng.choice(VOCABULARY[language], size=int(rng.integers(3, 19))))
    for i in range(len(words) - 1, 0, -1):
        if rng.random() < 0.12:
            words.insert(i, f'<break time="{int(rng.integers(200, 900))}ms"/>')
    return " ".join(words)


def synthesize(text: str, voice: Voice, sample_rate: int) -> np.ndarray:
    """Mono float32 speech at ``sample_rate`` (SSML markup allowed in ``text``)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = subprocess.run(
        [exe, "-m", "--stdout", "-v", voice.name, "-s", str(voice.words_per_minute), "-p", str(voice.pitch), text],
        check=True, capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    return librosa.resample(pcm.astype(np.float32) / 32768.0, orig_sr=rate, target_sr=sample_rate)
