"""Both storage backends behave the same; S3 runs against a local S3-compatible server (moto)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.core.storage import LocalStore, S3Store
from scripts.stack import free_port


@pytest.fixture(scope="module")
def s3_endpoint():
    if shutil.which("moto_server") is None and not _has_module("moto"):
        pytest.skip("moto[server] is not installed")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = S3Store("grpo-test", prefix="artifacts", endpoint_url=endpoint)
    s3.client.create_bucket(Bucket="grpo-test")
    return s3


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "weights.bin").write_bytes(os.urandom(3000))
    return root


def test_put_list_get_delete_round_trip(store, tmp_path):
    source = make_tree(tmp_path / "src")
    assert store.put_dir("jobs/1/checkpoints/5", source) == 3000 + 8
    assert store.list("jobs/1/checkpoints/5") == [("config.json", 8), ("sub/weights.bin", 3000)]
    assert store.list("jobs/1/checkpoints/50") == []  # a prefix is a directory, not a string prefix
    assert store.exists("jobs/1/checkpoints/5/config.json")
    with store.open("jobs/1/checkpoints/5/sub/weights.bin") as handle:
        assert handle.read() == (source / "sub" / "weights.bin").read_bytes()
    store.get_dir("jobs/1/checkpoints/5", tmp_path / "copy")
    assert (tmp_path / "copy" / "sub" / "weights.bin").read_bytes() == (source / "sub" / "weights.bin").read_bytes()
    store.delete_prefix("jobs/1/checkpoints/5")
    assert store.list("jobs/1/checkpoints/5") == [] and not store.exists("jobs/1/checkpoints/5/config.json")


def test_keys_cannot_escape_the_store(store):
    for key in ["../etc/passwd", "a/../../b", "", "a//b"]:
        with pytest.raises(ValueError):
            store.exists(key)


def test_local_store_survives_the_source_being_deleted(tmp_path):
    store = LocalStore(tmp_path / "store")
    source = make_tree(tmp_path / "src")
    store.put_dir("ck", source)
    shutil.rmtree(source)  # the engine's retention deletes its working copy; the stored one stays
    assert store.list("ck") == [("config.json", 8), ("sub/weights.bin", 3000)]
