"""A full disk during a checkpoint (issue 14 item 7): the job fails with `storage_full`, naming the path and
its free space, leaves no partial checkpoint behind and keeps the previous complete one."""

import errno
import uuid

from tests.utils.factories import tiny_spec
from workers.engine import checkpoint as checkpoint_module
from workers.engine import list_checkpoints
from workers.runner import job_work_dir


def test_a_full_disk_mid_checkpoint_fails_the_job_with_storage_full(client, auth, worker, settings, monkeypatch):
    spec = tiny_spec(max_steps=4)
    spec["checkpoint"] = {"every": 2, "keep_last": 2}
    job_id = client.post("/v1/jobs", json=spec, headers=auth).json()["id"]
    real_save = checkpoint_module.torch.save

    def disk_fills_at_step_4(obj, path, *args, **kwargs):
        if "000004" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_fills_at_step_4)
    job = worker.train(job_id)

    assert job.status == "failed"
    assert job.error["code"] == "storage_full"
    work_dir = job_work_dir(settings, uuid.UUID(job_id))
    assert "no space left" in job.error["message"] and str(work_dir) in job.error["message"]
    assert "MiB free" in job.error["message"]
    assert [step for step, _ in list_checkpoints(work_dir)] == [2]  # the previous complete one is kept
    assert not [p for p in work_dir.iterdir() if p.name.startswith(".tmp-")]
    checkpoints = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).json()["data"]
    assert [c["step"] for c in checkpoints] == [2]
