"""Atomic checkpoints: partial writes are never taken for complete ones."""

import json

import torch

from tests.utils.engine import FakeModel
from tests.utils.engine import save_fake_checkpoint as save
from workers.engine.checkpoint import (
    MARKER,
    checkpoint_dir,
    is_complete,
    latest_checkpoint,
    list_checkpoints,
    load_trainer_state,
    prune_checkpoints,
    remove_stale_temporaries,
    save_checkpoint,
)


def test_save_then_load(tmp_path):
    path = save(tmp_path, 7)
    assert path == checkpoint_dir(tmp_path, 7) and is_complete(path)
    state, info = load_trainer_state(path)
    assert state["x"].tolist() == [7] and info["step"] == 7 and info["data_cursor"] == 21
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_partial_and_temporary_directories_are_ignored(tmp_path):
    save(tmp_path, 2)
    # A crash mid-write leaves a temp dir (even one that already holds everything but the rename)...
    staging = tmp_path / ".tmp-checkpoint-000009-123"
    staging.mkdir()
    (staging / "model.bin").write_text("half")
    (staging / MARKER).write_text(json.dumps({"step": 9, "files": {"model.bin": 4}}))
    # ...a final name without a marker (e.g. copied by a tool that does not rename)...
    no_marker = checkpoint_dir(tmp_path, 8)
    no_marker.mkdir()
    (no_marker / "model.bin").write_text("x")
    # ...or with a marker whose inventory does not match (a truncated file).
    truncated = save(tmp_path, 6)
    (truncated / "model.bin").write_text("")
    assert latest_checkpoint(tmp_path).name == "checkpoint-000002"
    assert [step for step, _ in list_checkpoints(tmp_path)] == [2]
    remove_stale_temporaries(tmp_path)
    assert not staging.exists()


def test_resaving_a_step_replaces_it_atomically(tmp_path):
    save(tmp_path, 3)
    path = save(tmp_path, 3)
    assert (path / "model.bin").read_text() == "w3" and is_complete(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000003"]


def test_prune_keeps_the_most_recent(tmp_path):
    for step in (1, 2, 10, 11):
        save(tmp_path, step)
    deleted = prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in deleted] == ["checkpoint-000001", "checkpoint-000002"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 11]


def test_latest_of_missing_or_empty_directory_is_none(tmp_path):
    assert latest_checkpoint(tmp_path / "nowhere") is None
    assert latest_checkpoint(tmp_path) is None


def test_every_file_is_fsynced_before_the_marker_and_the_rename_comes_last(tmp_path, monkeypatch):
    import os

    log: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        log.append(("rename", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = save(tmp_path, 4)
    staging = next(path for kind, path in log if kind == "fsync" and path.endswith("model.bin")).rsplit("/", 1)[0]
    assert ".tmp-checkpoint-000004-" in staging  # written under a temporary name
    order = [(kind, path.replace(staging, "STAGING")) for kind, path in log]
    marker = order.index(("fsync", f"STAGING/{MARKER}"))
    for name in ("model.bin", "tokenizer.txt", "trainer_state.pt", "trainer_state.json"):
        assert order.index(("fsync", f"STAGING/{name}")) < marker, name
    assert order[marker + 1] == ("fsync", "STAGING")  # the directory entry of the marker
    assert order[marker + 2] == ("rename", f"STAGING -> {final}")
    assert order[marker + 3] == ("fsync", str(tmp_path))  # the rename itself is made durable


CRASHING_WRITER = """
import os, sys, time
from pathlib import Path
import torch
from tests.utils.engine import FakeModel
from tests.utils.engine import save_fake_checkpoint as save
from workers.engine.checkpoint import save_checkpoint

work_dir = Path(sys.argv[1])
save(work_dir, 1)


class Slow(FakeModel):
    def save_pretrained(self, path):
        (path / "model.bin").write_bytes(b"x" * 4096)  # half of the checkpoint is on disk...
        (work_dir.parent / "mid-write").touch()
        time.sleep(60)  # ...when the process is killed


save_checkpoint(work_dir, 2, model=Slow("w"), tokenizer=FakeModel("t", "tok.txt"), trainer_state={}, info={})
"""


def test_a_process_killed_mid_write_leaves_the_previous_checkpoint_as_the_latest(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from scripts.stack import PROJECT_ROOT

    work_dir = tmp_path / "work"
    writer = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(work_dir)], cwd=PROJECT_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "mid-write").exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the writer never got mid-write"
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait()
    leftovers = [p.name for p in work_dir.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers and latest_checkpoint(work_dir).name == "checkpoint-000001"
    remove_stale_temporaries(work_dir)  # what the next run does first
    assert sorted(p.name for p in work_dir.iterdir()) == ["checkpoint-000001"]
    assert load_trainer_state(checkpoint_dir(work_dir, 1))[1]["step"] == 1


# A full disk (issue 14 item 7): the job must say "no space left", leave no partial directory behind and
# keep the previous complete checkpoint.


def test_enospc_while_writing_removes_the_partial_directory_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    import pytest

    from workers.engine import checkpoint as checkpoint_module

    previous = save(tmp_path, 4)

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    with pytest.raises(checkpoint_module.StorageFull) as raised:
        save(tmp_path, 8)
    assert raised.value.code == "storage_full"
    assert "no space left" in str(raised.value) and str(tmp_path) in str(raised.value)
    assert "MiB free" in str(raised.value) and raised.value.free_bytes > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # the partial write is gone
    assert latest_checkpoint(tmp_path) == previous and is_complete(previous)


def test_torch_saves_unexpected_pos_error_is_recognised_as_a_full_disk(tmp_path, monkeypatch):
    import pytest

    from workers.engine import checkpoint as checkpoint_module

    def zip_writer_failed(*_args, **_kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint_module.torch, "save", zip_writer_failed)
    with pytest.raises(checkpoint_module.StorageFull):
        save(tmp_path, 3)
    assert list(tmp_path.iterdir()) == []


def test_other_write_errors_still_clean_up_but_are_not_called_a_full_disk(tmp_path, monkeypatch):
    import pytest

    from workers.engine import checkpoint as checkpoint_module

    def broken(*_args, **_kwargs):
        raise RuntimeError("pickling failed")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken)
    with pytest.raises(RuntimeError, match="pickling failed"):
        save(tmp_path, 3)
    assert list(tmp_path.iterdir()) == []


def test_free_space_is_checked_against_the_expected_size_before_writing(tmp_path, monkeypatch):
    import collections

    import pytest

    from workers.engine import checkpoint as checkpoint_module

    previous = save(tmp_path, 1)
    model = torch.nn.Linear(256, 256)  # 257 KiB of float32 weights
    state = {"optimizer": {"exp_avg": torch.zeros(256, 256), "exp_avg_sq": torch.zeros(256, 256)}}
    needed = checkpoint_module.expected_checkpoint_bytes(model, state)
    assert needed > 3 * 256 * 256 * 4 + checkpoint_module.SPACE_MARGIN_BYTES
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(
        checkpoint_module.shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - needed + 1, needed - 1)
    )
    written = []
    monkeypatch.setattr(checkpoint_module, "_write_staging", lambda *args: written.append(args))
    with pytest.raises(checkpoint_module.StorageFull) as raised:
        save_checkpoint(tmp_path, 2, model=model, tokenizer=FakeModel("t"), trainer_state=state, info={})
    assert written == []  # refused before anything was written
    assert raised.value.free_bytes == needed - 1 and raised.value.needed_bytes == needed
    assert "MiB free" in str(raised.value) and str(tmp_path) in str(raised.value)
    assert latest_checkpoint(tmp_path) == previous
