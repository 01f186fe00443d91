"""The ensemble's contract: model names, every tensor's name, dtype and shape, and the JSON answer.

The repository generator writes ``config.pbtxt`` from these specs, the Triton steps read and write
tensors by these names, the client sends ``VIDEO`` and parses ``Answer``, and the benchmarks and
parity checks build their inputs from the same specs: renaming a tensor here renames it everywhere.
Only the standard library is imported: the sizes come from a ``PreprocessConfig`` passed in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the client reads this module without the preprocessing (OpenCV, PyAV, librosa)
    from sync_defense.preprocessing.config import PreprocessConfig

ENSEMBLE = "sync_defense"
PREPROCESS, SCORE, DECISION = "preprocess", "score", "decision"
VISUAL_ENCODER, AUDIO_ENCODER, FUSION_CLASSIFIER = "visual_encoder", "audio_encoder", "fusion_classifier"
STEPS = (PREPROCESS, SCORE, DECISION)  # the ensemble's Python steps, in order
GRAPHS = (VISUAL_ENCODER, AUDIO_ENCODER, FUSION_CLASSIFIER)  # the exported graphs that ``score`` calls
# MediaPipe's face models as graphs (``preprocessing.face_graphs``), which ``preprocess`` calls where it serves them so.
FACE_DETECTOR, FACE_MESH = "face_detector", "face_mesh"
FACE_GRAPHS = (FACE_DETECTOR, FACE_MESH)
FACE_MODELS = ("mediapipe", "graphs")  # preprocess's ``face_models`` parameter: MediaPipe in its process, or FACE_GRAPHS
# The phone decoder (pocketsphinx, ``preprocessing.phones``) as a model of its own, which ``preprocess`` calls by BLS before
# it crops the mouths: the decoder holds the GIL for half a second per 10 s of speech, so in its own process it runs
# beside the crops and the lip mesh instead of after them.
PHONES = "phones"
# The one version of every model (its folder ``<model>/1``). The ensemble's steps and perf_analyzer's commands name it:
# left unnamed, perf_analyzer 2.51 takes a composing model's version to be the one whose queue count rose during a
# measurement window, and stops with "failed to find the requested model version" when none did in that window.
MODEL_VERSION = 1
MAX_BATCH = 32  # the graphs' max_batch_size: ``score`` sends chunks of at most this many rows
# The largest upload: the client refuses bigger files before sending, ``preprocess`` before decoding
# (``LimitsConfig.max_upload_bytes``). Triton 2.51 has no request-size flag of its own, so a proxy in
# front (``client_max_body_size``, an ingress body limit) is what stops a bigger body being buffered.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024

VERDICTS = ("real", "fake", "uncertain", "no_face", "no_speech")
NUMPY_DTYPES = {"FP32": "float32", "FP64": "float64", "INT16": "int16", "INT32": "int32", "UINT8": "uint8", "STRING": "object"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dims: tuple[int, ...]  # per item; a batching graph's batch axis is Triton's and not listed
    dtype: str = "FP32"  # Triton's name (TYPE_<dtype> in config.pbtxt)

    @property
    def numpy_dtype(self) -> str:
        return NUMPY_DTYPES[self.dtype]


@dataclass(frozen=True)
class ModelSpec:
    """One Triton model: its name and tensors."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)


# Tensor names, one constant each (the steps index their inputs by these).
VIDEO = "VIDEO"
MOUTH_CROPS, MEL, VIDEO_INFO = "MOUTH_CROPS", "MEL", "VIDEO_INFO"
WINDOW_TRACK, WINDOW_START, WINDOW_SPEECH, WINDOW_MOTION = "WINDOW_TRACK", "WINDOW_START", "WINDOW_SPEECH", "WINDOW_MOTION"
PAIR_WINDOW, PAIR_SHIFT, PAIR_FAKE_PROBABILITY = "PAIR_WINDOW", "PAIR_SHIFT", "PAIR_FAKE_PROBABILITY"
VERDICT, FAKE_PROBABILITY, CONFIDENCE, RESULT = "VERDICT", "FAKE_PROBABILITY", "CONFIDENCE", "RESULT"
MOUTHS, MELS = "MOUTHS", "MELS"
IMAGE, RAW_BOXES, RAW_SCORES, LANDMARKS, FACE_FLAG = "image", "raw_boxes", "raw_scores", "landmarks", "face_flag"
VISUAL_TOKENS, AUDIO_TOKENS, WINDOW_FAKE_PROBABILITY = "VISUAL_TOKENS", "AUDIO_TOKENS", "WINDOW_FAKE_PROBABILITY"
SPEECH_PCM, SPEECH_SPANS = "SPEECH_PCM", "SPEECH_SPANS"
PHONE_LABEL, PHONE_START_S, PHONE_END_S = "PHONE_LABEL", "PHONE_START_S", "PHONE_END_S"


def step_specs(pre: PreprocessConfig) -> dict[str, ModelSpec]:
    """The ensemble's three Python steps (none batches: one upload per request)."""
    t, s = pre.timeline.clip_frames, pre.mouth.crop_size
    video = TensorSpec(VIDEO, (1,), "STRING")
    crops = TensorSpec(MOUTH_CROPS, (-1, t, s, s, 3), "UINT8")
    mel = TensorSpec(MEL, (pre.audio.n_mels, -1))
    track, start = TensorSpec(WINDOW_TRACK, (-1,), "INT32"), TensorSpec(WINDOW_START, (-1,), "INT32")
    speech, motion = TensorSpec(WINDOW_SPEECH, (-1,)), TensorSpec(WINDOW_MOTION, (-1,))
    pairs = (TensorSpec(PAIR_WINDOW, (-1,), "INT32"), TensorSpec(PAIR_SHIFT, (-1,), "INT32"))
    info = TensorSpec(VIDEO_INFO, (1,), "STRING")
    probability = TensorSpec(PAIR_FAKE_PROBABILITY, (-1,))
    answer = (TensorSpec(VERDICT, (1,), "STRING"), TensorSpec(FAKE_PROBABILITY, (1,)), TensorSpec(CONFIDENCE, (1,)),
              TensorSpec(RESULT, (1,), "STRING"))
    return {
        PREPROCESS: ModelSpec(PREPROCESS, (video,), (crops, mel, track, start, speech, motion, *pairs, info)),
        SCORE: ModelSpec(SCORE, (crops, mel, start, *pairs), (probability,)),
        DECISION: ModelSpec(DECISION, (probability, *pairs, track, start, speech, motion, info), answer),
    }


def ensemble_spec(pre: PreprocessConfig) -> ModelSpec:
    steps = step_specs(pre)
    return ModelSpec(ENSEMBLE, steps[PREPROCESS].inputs, steps[DECISION].outputs)


def graph_specs(pre: PreprocessConfig, d_model: int) -> dict[str, ModelSpec]:
    """The three exported graphs, each with a dynamic batch axis of 1..``MAX_BATCH``."""
    tokens = (pre.timeline.clip_frames, d_model)
    visual, audio = TensorSpec(VISUAL_TOKENS, tokens), TensorSpec(AUDIO_TOKENS, tokens)
    t, s = pre.timeline.clip_frames, pre.mouth.crop_size
    return {
        VISUAL_ENCODER: ModelSpec(VISUAL_ENCODER, (TensorSpec(MOUTHS, (3, t, s, s)),), (visual,)),
        AUDIO_ENCODER: ModelSpec(AUDIO_ENCODER, (TensorSpec(MELS, (1, pre.audio.n_mels, pre.mel_frames)),), (audio,)),
        FUSION_CLASSIFIER: ModelSpec(FUSION_CLASSIFIER, (visual, audio), (TensorSpec(WINDOW_FAKE_PROBABILITY, (1,)),)),
    }


def phones_spec() -> ModelSpec:
    """The phone decoder: the 16-bit samples of some spans of timeline frames, back to back, and those spans
    ``[k0, k1)``; out, the phones with their times on the timeline's clock (seconds, float64 as decoded)."""
    return ModelSpec(PHONES, (TensorSpec(SPEECH_PCM, (-1,), "INT16"), TensorSpec(SPEECH_SPANS, (-1, 2), "INT32")),
                     (TensorSpec(PHONE_LABEL, (-1,), "STRING"), TensorSpec(PHONE_START_S, (-1,), "FP64"),
                      TensorSpec(PHONE_END_S, (-1,), "FP64")))


def python_specs(pre: PreprocessConfig) -> dict[str, ModelSpec]:
    """Every Python-backend model of a repository: the ensemble's steps and the phone decoder ``preprocess`` calls."""
    return {**step_specs(pre), PHONES: phones_spec()}


FACE_INPUT_PX = 192  # both face models see a 192-px square (BlazeFace full range, the attention mesh)
DETECTOR_ANCHORS = 2304  # BlazeFace full range: one anchor per cell of its 48 x 48 feature map
MESH_POINTS = 478  # the attention mesh: 468 points, lips and eyes refined, and 10 iris points


def face_graph_specs() -> dict[str, ModelSpec]:
    """BlazeFace and the attention mesh as batched graphs (NHWC float32 input, as in TFLite)."""
    image = (TensorSpec(IMAGE, (FACE_INPUT_PX, FACE_INPUT_PX, 3)),)
    return {
        FACE_DETECTOR: ModelSpec(FACE_DETECTOR, image, (TensorSpec(RAW_BOXES, (DETECTOR_ANCHORS, 16)),
                                                        TensorSpec(RAW_SCORES, (DETECTOR_ANCHORS, 1)))),
        FACE_MESH: ModelSpec(FACE_MESH, image, (TensorSpec(LANDMARKS, (MESH_POINTS, 2)), TensorSpec(FACE_FLAG, (1,)))),
    }


# --- the JSON answer (``RESULT``): written by the decision step, read by the client ---------------


@dataclass(frozen=True)
class Thresholds:
    fake: float  # fake at or above
    real: float  # real at or below; uncertain between
    speech: float  # share of voiced frames a window needs to vote


@dataclass(frozen=True)
class LipSyncReport:
    """The training-free test: lip opening against speech loudness over audio shifts (``inference.lipsync``)."""

    verdict: str  # in_sync | shifted | no_evidence
    lag_frames: int | None  # best audio shift, > 0: the audio comes after the mouth
    peak: float | None  # correlation at that shift
    at_zero: float | None  # correlation with the audio as uploaded
    chance_peak: float | None  # the peak must beat this: 95% of the peaks against the upload's speech reversed
    frames: int  # frames with measured lips


@dataclass(frozen=True)
class ForgeryEvidence:
    """One training-free trace of a re-made mouth (``inference.evidence``): sync alone never clears a face."""

    name: str  # phoneme_viseme | too_perfect_sync | mouth_blur | mouth_colour | mouth_flicker
    fired: bool  # the value is past its threshold on enough material
    value: float | None  # the measure (None: not enough material to measure it)
    threshold: float  # fires past this (ForgeryEvidenceConfig)
    support: int  # how much it rests on: closures called for, frames or 1-s windows measured
    # [start_s, end_s] where it shows: each missed closure, each 1-s window past the threshold (mouth_*), or
    # the stretches the correlation was taken over (too_perfect_sync, when fired)
    spans: list[list[float]]
    summary: str  # in words, with the counts


@dataclass(frozen=True)
class FaceReport:
    track_id: int
    box: list[float]  # [x, y, w, h], median over the track, in upright pixels
    first_s: float
    last_s: float
    fake_probability: float | None  # the face's probability from the evidence that decided; None without speech
    av_offset_frames: int | None  # > 0: the audio comes that many frames after the mouth
    av_offset_confidence: float | None
    speaking: bool  # the mouth moves during speech
    windows: int
    voting_windows: int
    model_probability: float | None  # the learned model's own probability (the rule over its windows)
    model_offset_frames: int | None  # the model's own best audio shift (None: not searched, or on the search's edge)
    model_self_test: float | None  # its self-test score: median minus minimum over shifts (decides at >= model_self_test)
    lip_sync: LipSyncReport | None
    evidence: str  # model | lip_sync | none: which test decided (model only when it passes its self-test)
    forgery_evidence: list[ForgeryEvidence]  # each trace measured on this face, fired or not
    verdict: str  # this face's: sync and the forgery evidence together (one of VERDICTS)


@dataclass(frozen=True)
class SegmentReport:
    track_id: int
    start_s: float
    end_s: float
    fake_probability: float


@dataclass(frozen=True)
class WindowReport:
    track_id: int
    start_s: float
    end_s: float
    fake_probability: float | None
    speech: float  # share of voiced frames
    mouth_motion: float


@dataclass(frozen=True)
class Answer:
    """One video's answer; ``RESULT`` carries it as JSON."""

    verdict: str  # one of VERDICTS
    fake_probability: float | None  # the deciding face's; None for no_face / no_speech
    confidence: float  # 0 inside the uncertain band or where forgery evidence, not the probability, set the verdict; 1 at 0 or 1
    av_offset_frames: int | None
    av_offset_s: float | None
    deciding_track_id: int | None
    duration_s: float
    sampled: bool  # windows were sampled (long video)
    thresholds: Thresholds
    faces: list[FaceReport] = field(default_factory=list)
    segments: list[SegmentReport] = field(default_factory=list)
    windows: list[WindowReport] = field(default_factory=list)
    # What limits the answer, in words: a truncated file, a held frame, a face that never speaks, ...
    warnings: list[str] = field(default_factory=list)

    @property
    def deciding_face(self) -> FaceReport | None:
        """The face the verdict comes from (``deciding_track_id``), if any."""
        return next((f for f in self.faces if f.track_id == self.deciding_track_id), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Answer:
        """Parse the server's JSON; an unknown or missing field is a contract error, not silently dropped."""
        expected = {f.name for f in fields(cls)}
        if set(values) != expected:
            raise ValueError(f"answer fields differ from the contract: missing {sorted(expected - set(values))}, "
                             f"unknown {sorted(set(values) - expected)}")
        return cls(**{**values, "thresholds": Thresholds(**values["thresholds"]),
                      "faces": [FaceReport(**{**f, "lip_sync": f["lip_sync"] and LipSyncReport(**f["lip_sync"]),
                                                 "forgery_evidence": [ForgeryEvidence(**e) for e in f["forgery_evidence"]]})
                                for f in values["faces"]],
                      "segments": [SegmentReport(**s) for s in values["segments"]],
                      "windows": [WindowReport(**w) for w in values["windows"]]})

    @classmethod
    def from_json(cls, text: str) -> Answer:
        return cls.from_dict(json.loads(text))
