"""Artifact storage (checkpoints, uploaded datasets) behind one small interface.

`LocalStore` keeps objects under a directory (the default; hard links make storing a checkpoint
that already sits on the same disk free). `S3Store` talks to any S3-compatible object store via
boto3. Keys are '/'-separated paths such as 'jobs/<id>/checkpoints/000050/model.safetensors'.
Writes of a directory are complete only once its marker object exists; readers check it.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from app.core.config import Settings

CHUNK = 1024 * 1024


class ObjectStore(Protocol):
    def put_dir(self, prefix: str, local_dir: Path) -> int:
        """Store every file of `local_dir` under `prefix`; returns the bytes stored."""

    def put_file(self, key: str, local_path: Path) -> None: ...

    def get_dir(self, prefix: str, local_dir: Path) -> None:
        """Copy every object under `prefix` into `local_dir`."""

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key relative to prefix, size) for every object under `prefix`, sorted."""

    def open(self, key: str) -> IO[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> None: ...


def _check_key(key: str) -> str:
    parts = key.strip("/").split("/")
    if not key or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid storage key {key!r}")
    return "/".join(parts)


def _put_files(store: ObjectStore, prefix: str, local_dir: Path) -> int:
    """Every file of `local_dir` through `store.put_file`, in a stable order; the bytes stored."""
    total = 0
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        store.put_file(f"{prefix}/{path.relative_to(local_dir).as_posix()}", path)
        total += path.stat().st_size
    return total


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_file(self, key: str, local_path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            os.link(local_path, partial)  # same filesystem: no copy, and the source may be deleted later
        except OSError:
            shutil.copyfile(local_path, partial)
        os.replace(partial, target)

    def put_dir(self, prefix: str, local_dir: Path) -> int:
        return _put_files(self, prefix, local_dir)

    def get_dir(self, prefix: str, local_dir: Path) -> None:
        for relative, _ in self.list(prefix):
            target = local_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._path(f"{prefix}/{relative}"), target)

    def list(self, prefix: str) -> list[tuple[str, int]]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            (p.relative_to(base).as_posix(), p.stat().st_size)
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".partial")
        )

    def open(self, key: str) -> IO[bytes]:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_file():  # a prefix naming one object, as S3's prefix deletes it
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)


class S3Store:
    """Any S3-compatible store (AWS, MinIO, Ceph...). Needs the `s3` extra (boto3)."""

    def __init__(self, bucket: str, *, prefix: str = "", endpoint_url: str | None = None) -> None:
        import boto3  # optional dependency, only needed when S3 storage is configured

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, local_path: Path) -> None:
        self.client.upload_file(str(local_path), self.bucket, self._key(key))

    def put_dir(self, prefix: str, local_dir: Path) -> int:
        return _put_files(self, prefix, local_dir)

    def get_dir(self, prefix: str, local_dir: Path) -> None:
        for relative, _ in self.list(prefix):
            target = local_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, self._key(f"{prefix}/{relative}"), str(target))

    def _objects(self, prefix: str) -> Iterator[dict[str, object]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/"):
            yield from page.get("Contents", [])

    def list(self, prefix: str) -> list[tuple[str, int]]:
        base = self._key(prefix) + "/"
        return sorted((str(obj["Key"])[len(base) :], int(obj["Size"])) for obj in self._objects(prefix))  # type: ignore[call-overload]

    def open(self, key: str) -> IO[bytes]:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]  # type: ignore[no-any-return]

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    def delete_prefix(self, prefix: str) -> None:
        keys = [{"Key": str(obj["Key"])} for obj in self._objects(prefix)]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000]})


def make_store(settings: Settings) -> ObjectStore:
    if settings.storage_url.startswith("s3://"):
        bucket, _, prefix = settings.storage_url.removeprefix("s3://").partition("/")
        return S3Store(bucket, prefix=prefix, endpoint_url=settings.s3_endpoint_url)
    return LocalStore(Path(settings.storage_url.removeprefix("file://")))
