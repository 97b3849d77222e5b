"""Atomic checkpoints: partial writes are never taken for complete ones."""

import json

import torch

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


class FakeModel:
    """Anything with save_pretrained will do for the storage layer."""

    def __init__(self, payload: str, name: str = "model.bin") -> None:
        self.payload, self.name = payload, name

    def save_pretrained(self, path):
        (path / self.name).write_text(self.payload)


def save(work_dir, step):
    return save_checkpoint(
        work_dir,
        step,
        model=FakeModel(f"w{step}"),
        tokenizer=FakeModel("tok", "tokenizer.txt"),
        trainer_state={"x": torch.tensor([step])},
        info={"data_cursor": step * 3},
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
