"""Videos with a known truth for tests, the demo sample and benchmarks, from the corpus renderer.

One or several faces from the face bank speak along mouth tracks driven by real speech
(espeak-ng); every manipulation is explicit (a shifted track, another utterance's track, a
spliced stretch), so a test knows what the server must find and where.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sync_defense.preprocessing.config import DEFAULT_CONFIG

from .corpus.faces import face_bank
from .corpus.render import HeadMotion, MouthStyle, MouthTrack, mouth_track, render_frames
from .corpus.speech import Voice, synthesize
from .media import encode_mp4

SR = DEFAULT_CONFIG.audio.sample_rate
DEMO_VOICE = Voice(language="en", variant="", words_per_minute=150, pitch=50)
DEMO_STYLE = MouthStyle(lip_rgb=(165.0, 70.0, 70.0), cavity_rgb=(45.0, 10.0, 15.0), teeth=True, width_frac=0.38,
                        max_open_frac=0.18, jaw_frac=0.04, blur_sigma=0.0, seam=0.0)
STILL = HeadMotion(np.zeros(4), np.full((4, 2), 0.1), np.zeros((4, 2)))
# A visible sway, nod, turn and zoom (frame pixels, pixels, degrees, relative scale).
SWAY = HeadMotion(np.array([14.0, 8.0, 4.0, 0.04]), np.array([[0.25, 0.4], [0.3, 0.5], [0.2, 0.35], [0.15, 0.3]]),
                  np.array([[0.0, 1.0], [2.0, 0.5], [1.0, 3.0], [0.3, 2.0]]))
FACE_WIDTH_FRAC, FACE_CENTRE_FRAC = 0.45, (0.5, 0.45)
SENTENCES = (  # what the test and demo videos say
    "The quick brown fox jumps over the lazy dog, and then it takes a long nap in the warm sun.",
    "Seven green windows open under the market station every summer evening, said the careful people.",
    "Yesterday the music followed us around the mountain, and the water was simple and better together.",
)


def speech(*sentences: str, voice: Voice = DEMO_VOICE, pad_s: float = 0.3) -> np.ndarray:
    """16 kHz speech of the sentences with ``pad_s`` of silence around each."""
    pad = np.zeros(int(pad_s * SR), np.float32)
    return np.concatenate([pad] + [np.concatenate([synthesize(s, voice, SR), pad]) for s in sentences])


def n_frames(audio: np.ndarray, fps: float) -> int:
    return int(audio.size / SR * fps)


def track_for(audio: np.ndarray, fps: float, n: int) -> MouthTrack:
    """The mouth track of ``audio``, cut or padded (closed mouth) to ``n`` frames."""
    track = mouth_track(audio, SR, fps, n_frames(audio, fps))
    pad = max(0, n - len(track))
    return MouthTrack(np.pad(track.opening, (0, pad))[:n], np.pad(track.width, (0, pad), constant_values=1.0)[:n])


def render_scene(tracks: list[MouthTrack], faces: list[str], fps: float, tile: tuple[int, int] = (320, 240),
                 motion: HeadMotion = STILL, columns: int | None = None) -> np.ndarray:
    """Faces on a grid of ``tile``-sized cells (one row unless ``columns``), each speaking along its own track."""
    bank = face_bank()
    tiles = [render_frames(bank[face], track, DEMO_STYLE, motion, fps, tile, FACE_WIDTH_FRAC, FACE_CENTRE_FRAC)
             for face, track in zip(faces, tracks, strict=True)]
    columns = columns or len(tiles)
    rows = [np.concatenate(tiles[i : i + columns], axis=2) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=1)


def talking_video(audio: np.ndarray, offset_frames: int = 0, fps: float = DEFAULT_CONFIG.timeline.fps, face: str = "grace_hopper",
                  motion: HeadMotion = STILL, tile: tuple[int, int] = (320, 240), times_s: np.ndarray | None = None) -> np.ndarray:
    """Frames of one face saying ``audio``; ``offset_frames`` (at 25 fps) > 0 moves the mouth later than the sound.

    ``times_s``: the instants of a variable-rate video's frames (``fps`` is then the rate the mouth
    track is computed at).
    """
    n = n_frames(audio, fps)
    track = track_for(audio, fps, n).delayed(int(round(offset_frames * fps / DEFAULT_CONFIG.timeline.fps)))
    if times_s is None:
        return render_scene([track], [face], fps, tile, motion)
    frames = render_frames(face_bank()[face], track.at_times(times_s, fps), DEMO_STYLE, motion, fps, tile,
                           FACE_WIDTH_FRAC, FACE_CENTRE_FRAC, times_s)
    return frames


def spliced_video(audio: np.ndarray, other: np.ndarray, start_s: float, end_s: float, fps: float = DEFAULT_CONFIG.timeline.fps,
                  face: str = "grace_hopper") -> np.ndarray:
    """One face in sync except from ``start_s`` to ``end_s``, where its mouth says ``other`` instead."""
    n = n_frames(audio, fps)
    track = track_for(audio, fps, n).spliced(track_for(other, fps, n), int(start_s * fps), int(end_s * fps))
    return render_scene([track], [face], fps)


def mp4(frames: np.ndarray, audio: np.ndarray, fps: float = DEFAULT_CONFIG.timeline.fps) -> bytes:
    return encode_mp4(frames, fps, audio[: int(len(frames) / fps * SR)], SR)




def looped_video(seconds: float) -> bytes:
    """A talking face in sync for ``seconds``: one rendered clip (about 10 s, 320x240) repeated, sound and picture together."""
    audio = speech(*SENTENCES[:2])
    frames = talking_video(audio)
    audio = audio[: int(len(frames) / DEFAULT_CONFIG.timeline.fps * SR)]
    repeats = int(np.ceil(seconds * DEFAULT_CONFIG.timeline.fps / len(frames)))
    n = int(seconds * DEFAULT_CONFIG.timeline.fps)
    sound = np.tile(audio, repeats)[: n * DEFAULT_CONFIG.samples_per_frame]
    return encode_mp4(np.concatenate([frames] * repeats)[:n], DEFAULT_CONFIG.timeline.fps, sound, SR)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a talking-face mp4 (H.264 + AAC) saying TEXT.")
    parser.add_argument("text")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--offset-frames", type=int, default=0, help="mouth lag behind the speech (a fake when not 0)")
    args = parser.parse_args()
    audio = speech(args.text)
    frames = talking_video(audio, args.offset_frames)
    args.out.write_bytes(mp4(frames, audio))
    print(f"{args.out}: {len(frames) / DEFAULT_CONFIG.timeline.fps:.2f} s")


if __name__ == "__main__":
    main()
