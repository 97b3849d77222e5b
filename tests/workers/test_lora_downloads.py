"""A LoRA job's checkpoint downloads: the adapter loads with stock peft, and the merged variant (made by a
worker task after POST .../merge) loads with stock transformers and computes what base + adapter compute."""

import io
import tarfile
import uuid

import torch
from peft import AutoPeftModelForCausalLM
from transformers import AutoModelForCausalLM

from tests.utils.factories import tiny_spec

IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])


def download(client, auth, job_id, step, tmp_path, **params):
    response = client.get(f"/v1/jobs/{job_id}/checkpoints/{step}/download", params=params, headers=auth)
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        root = archive.getnames()[0].split("/")[0]
        archive.extractall(tmp_path, filter="data")
    return tmp_path / root


@torch.no_grad()
def logits(model):
    return model.eval()(IDS).logits


def test_lora_adapter_loads_with_peft_and_the_merged_model_with_from_pretrained(client, auth, queue, worker, tmp_path):
    spec = tiny_spec(max_steps=2, learning_rate=0.05, seed=1)
    spec["model"]["lora"] = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "up_proj"]}
    spec["rewards"] = [{"type": "text_similarity", "metric": "edit_ratio"}]  # graded: non-zero advantages
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    assert worker.train(job_id).status == "succeeded"
    [checkpoint] = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).json()["data"]
    assert (checkpoint["step"], checkpoint["is_adapter"], checkpoint["merge_status"]) == (2, True, None)

    adapter_dir = download(client, auth, job_id, 2, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter_dir.iterdir()}
    assert not (adapter_dir / "model.safetensors").exists()  # adapters only, not a copy of the base
    with_adapter = AutoPeftModelForCausalLM.from_pretrained(adapter_dir)  # stock peft, base from its config

    too_early = client.get(f"/v1/jobs/{job_id}/checkpoints/2/download", params={"variant": "merged"}, headers=auth)
    assert too_early.status_code == 409 and "/merge first" in too_early.json()["detail"]
    requested = client.post(f"/v1/jobs/{job_id}/checkpoints/2/merge", headers=auth)
    assert requested.status_code == 202 and requested.json()["merge_status"] == "queued"
    assert queue.merges == [(uuid.UUID(job_id), 2)]
    worker.merge(job_id, 2)
    assert client.get(f"/v1/jobs/{job_id}/checkpoints/2", headers=auth).json()["merge_status"] == "succeeded"
    again = client.post(f"/v1/jobs/{job_id}/checkpoints/2/merge", headers=auth)
    assert again.json()["merge_status"] == "succeeded" and len(queue.merges) == 1  # a merged checkpoint is kept

    merged_dir = download(client, auth, job_id, 2, tmp_path / "merged", variant="merged")
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)  # stock transformers, no peft involved
    base = AutoModelForCausalLM.from_pretrained(with_adapter.peft_config["default"].base_model_name_or_path)
    assert torch.allclose(logits(merged), logits(with_adapter), atol=1e-5)
    assert not torch.allclose(logits(merged), logits(base), atol=1e-3)  # the adapters did change the model
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}, headers=auth).json()["data"]
    assert [e["data"]["merge_status"] for e in events if e["type"] == "merge"] == ["succeeded"]


def test_a_job_can_start_from_a_lora_checkpoint_merged_into_its_base(client, auth, worker, settings, tmp_path):
    lora_spec = tiny_spec(max_steps=2, learning_rate=0.05, seed=1)
    lora_spec["model"]["lora"] = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    lora_spec["rewards"] = [{"type": "text_similarity", "metric": "edit_ratio"}]
    lora_job = client.post("/v1/jobs", json=lora_spec, headers=auth).json()["id"]
    assert worker.train(lora_job).status == "succeeded"

    follow_up = tiny_spec(max_steps=1) | {"init_from": {"job_id": lora_job}}
    job_id = client.post("/v1/jobs", json=follow_up, headers=auth).json()["id"]
    job = worker.train(job_id)
    assert job.status == "succeeded", job.error
    [init_dir] = (settings.work_dir / job_id / "init").iterdir()
    assert not (init_dir / "adapter_config.json").exists()
    started_from = AutoModelForCausalLM.from_pretrained(init_dir)
    client.post(f"/v1/jobs/{lora_job}/checkpoints/2/merge", headers=auth)
    worker.merge(lora_job, 2)
    merged = AutoModelForCausalLM.from_pretrained(download(client, auth, lora_job, 2, tmp_path, variant="merged"))
    assert all(torch.equal(a, b) for a, b in zip(started_from.parameters(), merged.parameters(), strict=True))
