"""The real tritonserver serving the ensemble: gRPC and HTTP, parity with PyTorch, no face / no speech, bad input, batching."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from sync_defense import contract as c
from sync_defense.client import DetectionError, SyncDefenseClient
from sync_defense.contract import VERDICTS
from sync_defense.inference.decision import DecisionConfig
from sync_defense.preprocessing import DEFAULT_CONFIG, preprocess_video
from sync_defense.serving.reference import detect

FIELDS = {"file", "verdict", "fake_probability", "confidence", "av_offset_frames", "av_offset_s", "duration_s", "faces",
          "segments", "windows", "latency_ms", "thresholds", "sampled"}
FACE_FIELDS = {"track_id", "box", "first_s", "last_s", "fake_probability", "av_offset_frames", "speaking", "forgery_evidence", "verdict"}
WINDOW_FIELDS = {"track_id", "start_s", "end_s", "fake_probability", "speech"}


def clients(triton) -> dict[str, SyncDefenseClient]:
    return {
        "grpc": SyncDefenseClient(f"127.0.0.1:{triton.grpc_port}", "grpc"),
        "http": SyncDefenseClient(f"127.0.0.1:{triton.http_port}", "http"),
    }


def test_grpc_and_http_return_the_full_json(triton, talking_mp4: bytes) -> None:
    results = {protocol: c.detect(talking_mp4, name="talk.mp4").to_dict() for protocol, c in clients(triton).items()}
    expected_windows = len(preprocess_video(talking_mp4).window_start)
    for result in results.values():
        assert FIELDS <= result.keys()
        assert result["file"] == "talk.mp4" and result["verdict"] in VERDICTS
        assert 0.0 <= result["fake_probability"] <= 1.0 and 0.0 <= result["confidence"] <= 1.0
        assert len(result["faces"]) == 1 and FACE_FIELDS <= result["faces"][0].keys()
        assert len(result["windows"]) == expected_windows and all(WINDOW_FIELDS <= w.keys() for w in result["windows"])
        assert result["latency_ms"] > 0
    assert results["grpc"]["windows"] == results["http"]["windows"]


def test_triton_answer_equals_the_pytorch_reference(triton, model, talking_mp4: bytes) -> None:
    """Same preprocessing, same pairs: every window probability within 1e-4, the same verdict, offset and forgery evidence.

    The lips follow the speech (the probability is under the real threshold), but the synthetic mouth is
    opened by the loudness itself: too perfect a sync, so the face is not cleared.
    """
    cfg = DecisionConfig.from_calibration()
    reference = detect(model, talking_mp4, cfg)
    served = clients(triton)["grpc"].detect(talking_mp4)
    got = np.array([w.fake_probability for w in served.windows])
    assert np.max(np.abs(got - [w.fake_probability for w in reference.windows])) <= 1e-4
    assert served.verdict == reference.verdict != "real" and served.fake_probability <= cfg.real_threshold
    assert served.faces[0].forgery_evidence == reference.faces[0].forgery_evidence
    assert "too_perfect_sync" in {e.name for e in served.faces[0].forgery_evidence if e.fired}
    assert abs(served.fake_probability - reference.fake_probability) <= 1e-4
    assert served.av_offset_frames == reference.av_offset_frames and abs(served.av_offset_frames) <= 1


def test_video_without_face_is_no_face_not_an_error(triton, no_face_mp4: bytes) -> None:
    result = clients(triton)["grpc"].detect(no_face_mp4)
    assert result.verdict == "no_face" and result.faces == [] and result.windows == [] and result.fake_probability is None


@pytest.mark.parametrize("fixture", ["silent_mp4", "noise_mp4"])
def test_silence_and_noise_are_no_speech(triton, fixture: str, request) -> None:
    result = clients(triton)["http"].detect(request.getfixturevalue(fixture))
    assert result.verdict == "no_speech" and len(result.faces) == 1 and len(result.windows) == 4
    assert all(w.speech < DEFAULT_CONFIG.speech.min_window_fraction for w in result.windows)


@pytest.mark.parametrize("upload, reason", [(b"not a video" * 50, "cannot read"), (b"", "empty upload")])
def test_bad_upload_fails_only_its_own_request(triton, talking_mp4: bytes, upload: bytes, reason: str) -> None:
    client = clients(triton)["grpc"]
    with ThreadPoolExecutor(3) as pool:
        good = [pool.submit(client.detect, talking_mp4) for _ in range(2)]
        bad = pool.submit(client.detect, upload)
        with pytest.raises(DetectionError, match=reason):
            bad.result()
        assert all(f.result().windows for f in good)
    assert client.ready()


def test_dynamic_batching_merges_concurrent_requests(triton) -> None:
    """Concurrent requests to an encoder run in fewer executions than requests."""
    http = httpclient.InferenceServerClient(f"127.0.0.1:{triton.http_port}", concurrency=8)

    def stats() -> tuple[int, int]:
        s = http.get_inference_statistics("visual_encoder", headers=triton.admin_headers())["model_stats"][0]
        return int(s["inference_stats"]["success"]["count"]), int(s["execution_count"])

    size = DEFAULT_CONFIG.mouth.crop_size
    mouths = np.zeros((2, 3, DEFAULT_CONFIG.timeline.clip_frames, size, size), np.float32)
    requests_before, executions_before = stats()
    pending = []
    for _ in range(12):
        tensor = httpclient.InferInput("MOUTHS", list(mouths.shape), "FP32")
        tensor.set_data_from_numpy(mouths)
        pending.append(http.async_infer("visual_encoder", [tensor]))
    assert all(p.get_result().as_numpy("VISUAL_TOKENS").shape[0] == 2 for p in pending)
    deadline = time.monotonic() + 10
    while (counted := stats())[0] - requests_before < 12 and time.monotonic() < deadline:
        time.sleep(0.05)  # Triton counts a request after its response is sent: the last ones can lag the results
    requests_after, executions_after = counted
    assert requests_after - requests_before == 12
    assert executions_after - executions_before < 12


def test_the_phones_model_decodes_each_uploads_speech(triton, talking_mp4: bytes) -> None:
    """``preprocess`` hands the speech to the ``phones`` model (its answer is checked against the in-process
    decoder by the PyTorch-reference test above); a request that does not fill its spans gets a clear error."""
    http = httpclient.InferenceServerClient(f"127.0.0.1:{triton.http_port}")

    def served() -> int:
        s = http.get_inference_statistics(c.PHONES, headers=triton.admin_headers())["model_stats"][0]
        return int(s["inference_stats"]["success"]["count"])

    before = served()
    clients(triton)["grpc"].detect(talking_mp4)
    deadline = time.monotonic() + 10
    while served() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served() == before + 1
    pcm, spans = httpclient.InferInput(c.SPEECH_PCM, [5], "INT16"), httpclient.InferInput(c.SPEECH_SPANS, [1, 2], "INT32")
    pcm.set_data_from_numpy(np.zeros(5, np.int16))
    spans.set_data_from_numpy(np.array([[0, 1]], np.int32))
    with pytest.raises(InferenceServerException, match="do not fill"):
        http.infer(c.PHONES, [pcm, spans])


def test_a_second_server_on_taken_ports_refuses_to_start(triton) -> None:
    """Otherwise the running server's readiness would be taken for the new one's (stale code served)."""
    from devtools.local_triton import LocalTriton

    second = LocalTriton(triton.repository, triton.http_port, triton.grpc_port, triton.metrics_port, workdir=triton.workdir)
    with pytest.raises(RuntimeError, match="already in use"):
        second.start()
    assert second.process is None
