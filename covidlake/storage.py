"""Lake storage: one small interface, two backends chosen by the lake URI.

Keys are '/'-separated paths relative to the lake root (``raw/covid_data/...``), the
same in a local folder and in an S3 bucket, so every zone has one layout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlparse

from covidlake.errors import LakeAccessDenied

# DeleteObjects takes at most this many keys per request.
S3_DELETE_BATCH_KEYS = 1000
# What S3 answers for a key that is not there (GetObject says NoSuchKey, HeadObject a bare 404).
_S3_MISSING = ("NoSuchKey", "404", "NotFound")


class LakeStorage(ABC):
    uri: str

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store a local file under key; a reader never sees a partial object."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError if there is no such key, in every backend."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys (files only) under prefix, sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...

    @abstractmethod
    def url(self, key: str) -> str:
        """The key as a Spark/Hadoop path: file:///... or s3://..."""

    @abstractmethod
    def replace_prefix(self, staged: str, final: str) -> None:
        """Make the contents of `staged` the contents of `final`, removing `staged`."""

    def publish(self, staged_to_final: dict[str, str]) -> None:
        """Publish several staged folders once all of them are complete."""
        for staged in staged_to_final:
            if not self.list(staged):
                raise RuntimeError(f"refusing to publish empty staging folder {self.url(staged)}")
        for staged, final in staged_to_final.items():
            self.replace_prefix(staged, final)

    def staging_prefix(self, zone: str, run_id: str | None = None) -> str:
        return f"_staging/{zone}/{run_id or uuid.uuid4().hex}"


class LocalStorage(LakeStorage):
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, target)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def url(self, key: str) -> str:
        # Not Path.as_uri(): Hadoop would not decode its %3D for the '=' of partitions.
        return f"file://{self._path(key)}"

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def replace_prefix(self, staged: str, final: str) -> None:
        src, dst = self._path(staged), self._path(final)
        files = [p for p in src.rglob("*") if p.is_file() and _is_data_file(p.name)]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if len(files) == 1 and files[0].parent == src:
            # One file: a single rename over the previous one, so a reader sees the
            # old table or the new one whole (rename(2) is atomic).
            dst.mkdir(exist_ok=True)
            target = dst / single_file_name(files[0].name)
            os.replace(files[0], target)
            for stale in dst.iterdir():
                if stale != target:
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            shutil.rmtree(src, ignore_errors=True)
            return
        # Several files: swap the folders with two renames (a reader may find the folder
        # missing for that instant, never a mix of versions).
        old = dst.with_name(f".{dst.name}.old.{uuid.uuid4().hex}")
        if dst.exists():
            os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)


class S3Storage(LakeStorage):
    def __init__(self, bucket: str, prefix: str = "", client=None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client("s3")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as err:
            code = err.response["Error"]["Code"]
            if code in _S3_MISSING:
                return False
            if code in ("403", "AccessDenied"):
                # S3 answers 403, not 404, for a missing key when s3:ListBucket is not allowed.
                raise LakeAccessDenied(
                    f"{self.url(key)}: access denied (403) on HeadObject; the role needs s3:GetObject on this key "
                    f"and s3:ListBucket on bucket {self.bucket} (without which a missing key answers 403, not 404)"
                ) from err
            raise

    def put_file(self, key: str, path: Path) -> None:
        # A single PUT (or multipart upload) is atomic: the object appears whole or not at all.
        self.client.upload_file(str(path), self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] in _S3_MISSING:
                raise FileNotFoundError(f"{self.url(key)}: no such key") from err
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    # Conditional writes for the run lock: each returns None where another writer won.
    _LOST = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404")

    def put_bytes_conditional(self, key: str, data: bytes, etag: str | None = None) -> str | None:
        """Write data if key is absent (etag None: If-None-Match *) or still has this ETag
        (If-Match); the new ETag, or None if the condition failed."""
        from botocore.exceptions import ClientError

        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)["ETag"]
        except ClientError as err:
            if err.response["Error"]["Code"] in self._LOST:
                return None
            raise

    def get_with_etag(self, key: str) -> tuple[bytes, str, float] | None:
        """(body, ETag, last-modified epoch seconds), or None if the key is absent."""
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response["Error"]["Code"] in self._LOST:
                return None
            raise
        return obj["Body"].read(), obj["ETag"], obj["LastModified"].timestamp()

    def delete_if_match(self, key: str, etag: str) -> bool:
        """Delete key only if it still has this ETag; False if it changed or is gone."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key), IfMatch=etag)
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] in self._LOST:
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list(prefix)
        self._delete_keys(keys)

    def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), S3_DELETE_BATCH_KEYS):
            batch = [{"Key": self._key(k)} for k in keys[i : i + S3_DELETE_BATCH_KEYS]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def replace_prefix(self, staged: str, final: str) -> None:
        # S3 has no rename. One object: copied over the previous one under a fixed key,
        # which is atomic for readers. Several: copy the new objects in, then delete the
        # old ones that the new version does not overwrite, then the staging copy.
        staged_keys = [k for k in self.list(staged) if _is_data_file(k.rsplit("/", 1)[-1])]
        base, final = staged.rstrip("/"), final.rstrip("/")
        if len(staged_keys) == 1 and staged_keys[0].count("/") == base.count("/") + 1:
            name = single_file_name(staged_keys[0].rsplit("/", 1)[-1])
            moves = {staged_keys[0]: f"{final}/{name}"}
        else:
            moves = {k: final + k[len(base) :] for k in staged_keys}
        new_keys = set(moves.values())
        for src, dst in moves.items():
            self.client.copy_object(
                Bucket=self.bucket, Key=self._key(dst), CopySource={"Bucket": self.bucket, "Key": self._key(src)}
            )
        self._delete_keys([k for k in self.list(final + "/") if k not in new_keys])
        self.delete_prefix(staged)


def _is_data_file(name: str) -> bool:
    """Spark's output without its bookkeeping (_SUCCESS, .crc checksums)."""
    return not name.startswith((".", "_"))


def single_file_name(name: str) -> str:
    """A fixed name for a table stored as one file: `part-00000.snappy.parquet`."""
    suffix = name[name.index(".") :] if "." in name else ""
    return f"part-00000{suffix}"


def open_lake(uri: str, s3_client=None) -> LakeStorage:
    """`./lake`, `/abs/path`, `file:///abs/path` or `s3://bucket/prefix`."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"lake URI {uri!r} names no bucket")
        return S3Storage(parsed.netloc, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        return LocalStorage(parsed.path)
    if parsed.scheme == "":
        return LocalStorage(uri)
    raise ValueError(f"unsupported lake URI {uri!r}: use a folder path or s3://bucket/prefix")
