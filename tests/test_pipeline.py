"""The whole preprocessing path on real mp4 files made by the project's own talking-head code."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sync_defense.offline.synthetic import scenes
from sync_defense.offline.synthetic.media import encode_mp4
from sync_defense.preprocessing import DEFAULT_CONFIG as CFG
from sync_defense.preprocessing import MediaError, preprocess_video
from sync_defense.preprocessing.audio import frame_loudness_dbfs
from sync_defense.preprocessing.decode import decode_audio, first_frame_time
from sync_defense.preprocessing.pipeline import scan_video
from sync_defense.preprocessing.skimming import sample_windows, skim_spans


def test_talking_face_becomes_windows(talking_mp4: bytes) -> None:
    video = preprocess_video(talking_mp4)
    n = len(video.window_start)
    assert len(video.tracks) == 1 and n >= 5
    assert video.crops.shape == (n, CFG.timeline.clip_frames, CFG.mouth.crop_size, CFG.mouth.crop_size, 3) and video.crops.dtype == np.uint8
    assert video.mel.shape == (CFG.audio.n_mels, CFG.mels_per_frame * video.n_frames + 1)
    assert video.window_start[-1] + CFG.timeline.clip_frames == video.n_frames  # the last window ends with the video
    assert video.window_speech.max() > 0.9  # the sentence is voiced


def test_mouth_crop_opens_with_the_speech(talking_mp4: bytes) -> None:
    """The crop is on the mouth: the dark opening at its centre grows and shrinks with loudness."""
    video = preprocess_video(talking_mp4)
    whole = [w for w, s in enumerate(video.window_start) if s % CFG.timeline.clip_frames == 0]
    centre = np.concatenate([video.crops[w, :, 24:40, 20:44].mean(axis=(1, 2, 3)) for w in whole])
    audio = decode_audio(talking_mp4, CFG, first_frame_time(talking_mp4), len(centre) * CFG.samples_per_frame)
    loudness = frame_loudness_dbfs(audio, CFG)
    assert np.corrcoef(-centre, loudness)[0, 1] > 0.5


def test_a_speaking_mouth_moves_a_silent_one_does_not(talking_mp4: bytes, silent_mp4: bytes) -> None:
    talking, silent = preprocess_video(talking_mp4), preprocess_video(silent_mp4)
    speaking = np.median(talking.window_motion[talking.window_speech > 0.5])
    # The decision reads the median; a still face's first window may move a little while its track's
    # lips settle (the track ends are not median-filtered), never as much as a speaking mouth.
    assert speaking > 3 * np.median(silent.window_motion) and speaking > silent.window_motion.max()


def test_no_face_is_reported_not_raised(no_face_mp4: bytes) -> None:
    video = preprocess_video(no_face_mp4)
    assert video.tracks == () and video.crops.shape[0] == 0 and video.window_start.size == 0


def test_a_face_on_screen_part_of_the_time_is_scored_only_there(talking_mp4: bytes, sentence_audio: np.ndarray) -> None:
    """Frames without the face (first 2 s grey) are not windows of that face."""
    frames = scenes.talking_video(sentence_audio)
    frames[:50] = 128
    video = preprocess_video(scenes.mp4(frames, sentence_audio))
    assert len(video.tracks) == 1 and 50 <= video.tracks[0].first <= 50 + CFG.faces.detect_every  # next detector run
    assert video.window_start.min() >= video.tracks[0].first


def test_long_video_is_sampled_within_the_cap() -> None:
    cfg = replace(CFG, limits=replace(CFG.limits, max_windows_per_face=4))
    starts = np.arange(0, 250, 25)
    speech = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1], np.float32)
    chosen = sample_windows(starts, speech, cfg)
    assert len(chosen) == 4 and np.all(np.isin(chosen, starts[speech > 0]))  # voiced windows first
    assert chosen[0] == 0 and chosen[-1] == 225  # spread over the whole video
    assert np.array_equal(sample_windows(starts[:3], speech[:3], cfg), starts[:3])  # under the cap: all


def test_long_videos_are_skimmed_in_the_same_stretches_whatever_their_length() -> None:
    """Past the cap, what is decoded is fixed: 12 stretches of 5 windows, voiced ones first, spread out."""
    limits, length = CFG.limits, 4 * CFG.timeline.window_stride_frames + CFG.timeline.clip_frames
    for minutes in (2, 10, 60):
        n = minutes * 60 * CFG.timeline.fps
        speech = np.zeros(n, bool)
        speech[n // 2 :] = True  # silence, then speech
        spans = skim_spans(n, speech, {}, CFG)
        assert len(spans) == limits.max_windows_per_face // limits.skim_stretch_windows
        assert all(k1 - k0 == length for k0, k1 in spans) and all(b[0] >= a[1] for a, b in zip(spans[:-1], spans[1:], strict=True))
        assert all(speech[k0:k1].all() for k0, k1 in spans)  # only voiced stretches when there are enough
        assert spans[0][0] == n // 2 and spans[-1][1] > n - length  # spread over the voiced half
    # A face only in the second half (surveyed every 10 s) outranks speech without a face in the first.
    n = 10 * 60 * CFG.timeline.fps
    spans = skim_spans(n, np.ones(n, bool), {k: k >= n // 2 for k in range(0, n, 250)}, CFG)
    assert all(k0 >= n // 2 - length // 2 for k0, _ in spans) and spans[-1][1] > n - length


def test_stretches_go_where_the_survey_saw_a_face(sentence_audio: np.ndarray) -> None:
    """A 30-s video (skimmed at a cap of 10 windows: 2 stretches) with speech throughout and the face
    only in its last 10 s: both stretches, and so all 10 windows, land where the face is."""
    cfg = replace(CFG, limits=replace(CFG.limits, max_windows_per_face=10))
    frames = scenes.talking_video(sentence_audio)
    n = 30 * CFG.timeline.fps
    repeats = -(-n // len(frames))
    video_frames = np.concatenate([frames] * repeats)[:n]
    video_frames[: n - 10 * CFG.timeline.fps] = 128
    sound = np.tile(sentence_audio[: len(frames) * CFG.samples_per_frame], repeats)[: n * CFG.samples_per_frame]
    video = preprocess_video(scenes.mp4(video_frames, sound), cfg)
    assert video.sampled and len(video.window_start) == 10
    assert video.window_start.min() >= n - 10 * CFG.timeline.fps


def test_two_faces_are_each_followed_across_the_stretches(sentence_audio: np.ndarray) -> None:
    """Side by side for 30 s, skimmed at a cap of 10 windows: two tracks over the whole video, 10 windows each."""
    cfg = replace(CFG, limits=replace(CFG.limits, max_windows_per_face=10))
    n = scenes.n_frames(sentence_audio, CFG.timeline.fps)
    track = scenes.track_for(sentence_audio, CFG.timeline.fps, n)
    frames = scenes.render_scene([track, track], ["grace_hopper", "astronaut"], CFG.timeline.fps)
    total, repeats = 30 * CFG.timeline.fps, -(-30 * CFG.timeline.fps // n)
    sound = np.tile(sentence_audio[: n * CFG.samples_per_frame], repeats)[: total * CFG.samples_per_frame]
    video = preprocess_video(scenes.mp4(np.concatenate([frames] * repeats)[:total], sound), cfg)
    assert video.sampled and [(t.first, t.last) for t in video.tracks] == [(0, total - 1)] * 2
    assert np.bincount(video.window_track).tolist() == [10, 10]


def test_a_long_video_is_decoded_only_in_its_stretches() -> None:
    """A 150-s talking face: faces looked for, windows scored and lips measured in the stretches only,
    one face followed from stretch to stretch, and the cap's 60 windows all scored."""
    data = scenes.looped_video(150)
    scan, _ = scan_video(data, CFG)
    assert scan.n_frames == 150 * CFG.timeline.fps and scan.spans is not None
    inside = scan.decoded()
    assert inside.sum() == CFG.limits.max_windows_per_face * CFG.timeline.clip_frames
    assert all(inside[k] for k in scan.keyframe_faces)
    video = preprocess_video(data)
    assert video.sampled and len(video.tracks) == 1 and len(video.window_start) == CFG.limits.max_windows_per_face
    assert all(inside[s : s + CFG.timeline.clip_frames].all() for s in video.window_start)
    assert np.array_equal(np.isfinite(video.apertures[0]), inside)  # every stretch frame measured, no other
    assert np.array_equal(np.isfinite(video.textures[0][:, 0]), inside)  # the mouth's texture too
    after_a_measured_frame = inside & np.concatenate([[False], inside[:-1]])  # a change needs the frame before
    assert np.array_equal(np.isfinite(video.textures[0][:, 2]), after_a_measured_frame)
    phone_frames = (video.phones.start_s * CFG.timeline.fps).astype(int)
    assert len(video.phones.labels) > 100 and inside[phone_frames].all()  # phones decoded in the stretches only
    assert video.window_motion.min() > 0 and np.median(video.window_speech) > 0.5


def test_too_short_video_is_a_clear_error() -> None:
    data = encode_mp4(np.zeros((12, 64, 64, 3), np.uint8), 25, np.zeros(8000, np.float32), CFG.audio.sample_rate)
    with pytest.raises(MediaError, match="at least 2.00 s"):
        preprocess_video(data)


def test_too_long_video_is_refused_not_truncated() -> None:
    cfg = replace(CFG, limits=replace(CFG.limits, max_duration_s=3.0))
    data = encode_mp4(np.zeros((100, 32, 32, 3), np.uint8), 25, np.zeros(4 * CFG.audio.sample_rate, np.float32), CFG.audio.sample_rate)
    with pytest.raises(MediaError, match="at most 3 s"):
        preprocess_video(data, cfg)


def test_faces_and_lips_found_on_worker_threads_equal_the_inline_models(talking_mp4: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both passes run the face models on ``MODEL_THREADS`` graph copies in parallel; copies and threads
    change no value, and requests from several threads at once (the FastAPI baseline) each get their own answer."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from sync_defense.preprocessing import landmarks

    threaded = preprocess_video(talking_mp4)

    def inline(fn, *args) -> Future:  # noqa: ANN001
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    with monkeypatch.context() as patch:
        patch.setattr(landmarks, "in_background", inline)
        reference = preprocess_video(talking_mp4)
    assert [t.boxes.tolist() for t in threaded.tracks] == [t.boxes.tolist() for t in reference.tracks]
    assert np.isfinite(reference.apertures[0]).sum() > 100
    assert np.array_equal(threaded.apertures[0], reference.apertures[0], equal_nan=True)
    assert np.array_equal(threaded.crops, reference.crops)
    assert np.array_equal(threaded.textures[0], reference.textures[0], equal_nan=True)
    with ThreadPoolExecutor(3) as callers:
        for video in callers.map(preprocess_video, [talking_mp4] * 3):
            assert np.array_equal(video.apertures[0], reference.apertures[0], equal_nan=True)
            assert video.phones.labels == reference.phones.labels and len(video.phones.labels) > 20  # a phone decoder per thread


def test_phones_are_asked_for_before_the_crops_and_read_after(talking_mp4: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a runner (the server's ``phones`` model) the speech is sent before pass 2 crops the mouths, so that
    it is decoded meanwhile; the phones are those decoded in this process."""
    from concurrent.futures import ThreadPoolExecutor

    from sync_defense.preprocessing import phones, pipeline

    reference = preprocess_video(talking_mp4)
    events: list[str] = []
    crop_mouths = pipeline.crop_mouths
    monkeypatch.setattr(pipeline, "crop_mouths", lambda *args, **kw: events.append("crops") or crop_mouths(*args, **kw))
    with ThreadPoolExecutor(1) as elsewhere:
        def runner(speech: phones.SpeechSpans):  # noqa: ANN202
            events.append("phones")
            return elsewhere.submit(phones.decode_speech, speech, CFG)

        monkeypatch.setattr(phones, "_runner", runner)
        video = preprocess_video(talking_mp4)
    assert events == ["phones", "crops"]
    assert video.phones.labels == reference.phones.labels and len(video.phones.labels) > 20
    assert np.array_equal(video.phones.start_s, reference.phones.start_s) and np.array_equal(video.phones.end_s, reference.phones.end_s)


def test_the_phone_decoder_refuses_samples_that_do_not_fill_their_spans() -> None:
    from sync_defense.preprocessing.phones import SpeechSpans, decode_speech, speech_spans

    audio = np.zeros(10 * CFG.samples_per_frame + 7, np.float32)  # ten frames and a few samples
    speech = speech_spans(audio, CFG, [(0, 4), (6, 12)])
    assert speech.spans.tolist() == [[0, 4], [6, 10]] and len(speech.pcm) == 8 * CFG.samples_per_frame  # whole frames only
    with pytest.raises(ValueError, match="do not fill"):
        decode_speech(SpeechSpans(speech.pcm[:-1], speech.spans), CFG)
