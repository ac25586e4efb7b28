"""GPU routing: a spec asking for device 'cuda' goes to the GPU queue and only a `--queue gpu` worker takes it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from app.core.config import Settings, with_device
from app.main import create_app
from fedcore.spec import preset
from tests.app.held import HeldExecutor, held_settings
from tests.app.stack import TEST_JOB, Stack
from worker.executors import CeleryExecutor


def test_celery_executor_sends_cuda_jobs_to_the_gpu_queue() -> None:
    executor = CeleryExecutor(Settings(broker_url="redis://127.0.0.1:1/0", gpu_queue="gpu-a100"))
    try:
        assert executor.queue_for("cuda") == "gpu-a100"
        assert executor.queue_for("cpu") == "experiments"
        assert executor.queue_for("auto") == "experiments"
    finally:
        executor.close()


def test_the_spec_device_reaches_the_executor(tmp_path: Path) -> None:
    settings = held_settings(tmp_path)
    executor = HeldExecutor(settings)
    app = create_app(settings, background=False, executor_factory=lambda _: executor)
    with TestClient(app) as client:
        for device in ("cuda", "auto"):
            resp = client.post(
                "/api/v1/experiments",
                json={"name": f"on {device}", "preset": "smoke", "overrides": {"device": device}},
            )
            assert resp.status_code == 201, resp.text
    assert executor.devices == ["cuda", "auto"]


def test_a_worker_device_setting_applies_only_to_auto_specs() -> None:
    gpu_box = Settings(device="cuda")
    assert with_device(preset("smoke"), gpu_box).device == "cuda"
    assert with_device(preset("smoke", device="cpu"), gpu_box).device == "cpu"
    assert with_device(preset("smoke"), Settings()).device == "auto"


@pytest.mark.integration
def test_only_a_gpu_queue_worker_takes_a_cuda_job(api: httpx.Client, stack: Stack) -> None:
    def submit(**overrides: Any) -> str:
        resp = api.post("/api/v1/experiments", json={"name": "routed", "preset": "smoke", "overrides": overrides})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    cuda_job = submit(**TEST_JOB, device="cuda")
    cpu_job = submit(**TEST_JOB)
    # the stack's worker (experiments + clients queues) runs the CPU job and leaves the CUDA one alone
    assert stack.wait_status(api, cpu_job, {"succeeded"})["status"] == "succeeded"
    time.sleep(1.0)
    assert api.get(f"/api/v1/experiments/{cuda_job}").json()["status"] == "queued"

    name = f"gpu-{uuid.uuid4().hex[:6]}"
    stack.start_worker(name, "gpu")
    try:
        stack.wait_worker(name, "gpu")
        final = stack.wait_status(api, cuda_job, {"succeeded", "failed"}, timeout=120)
    finally:
        stack.stop_worker(name)
    if torch.cuda.is_available():
        assert final["status"] == "succeeded", final
    else:  # this machine has no GPU: the GPU worker took the job and says why it cannot train it
        assert final["status"] == "failed", final
        assert "torch sees no CUDA device" in (final["error"] or ""), final
