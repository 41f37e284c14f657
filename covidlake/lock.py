"""One run at a time per lake.

A folder lake uses an OS file lock (released by the kernel if the holder dies); an S3
lake uses a conditional write of a lock object, which expires after a time-to-live so a
crashed holder cannot block the lake for ever. On AWS the state machine also refuses to
start a second execution (see statemachine/pipeline.asl.json).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from filelock import FileLock, Timeout

from covidlake.storage import LakeStorage, LocalStorage, S3Storage

LOCK_NAME = ".covidlake.lock"
S3_LOCK_KEY = "_locks/pipeline.json"


class RunInProgress(RuntimeError):
    """Another run holds the lake."""


def _holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(timezone.utc).isoformat()}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another run"
    return f"the run started at {holder.get('started_at')} by pid {holder.get('pid')} on {holder.get('host')}"


@contextmanager
def run_lock(storage: LakeStorage, wait_seconds: float = 0.0, ttl_seconds: float = 6 * 3600) -> Iterator[None]:
    if isinstance(storage, LocalStorage):
        with _file_lock(storage, wait_seconds):
            yield
    elif isinstance(storage, S3Storage):
        with _s3_lock(storage, wait_seconds, ttl_seconds):
            yield
    else:  # pragma: no cover - every backend is one of the two
        raise TypeError(f"no lock for {type(storage).__name__}")


@contextmanager
def _file_lock(storage: LocalStorage, wait_seconds: float) -> Iterator[None]:
    storage.root.mkdir(parents=True, exist_ok=True)
    path = storage.root / LOCK_NAME
    info = path.with_name(LOCK_NAME + ".json")
    lock = FileLock(path, timeout=wait_seconds)
    try:
        lock.acquire()
    except Timeout:
        holder = json.loads(info.read_text()) if info.exists() else None
        raise RunInProgress(
            f"lake {storage.uri} is in use by {_describe(holder)}; waited {wait_seconds:g} s "
            f"(retry later or pass --wait SECONDS)"
        ) from None
    try:
        info.write_text(json.dumps(_holder_info()))
        yield
    finally:
        info.unlink(missing_ok=True)
        lock.release()


@contextmanager
def _s3_lock(storage: S3Storage, wait_seconds: float, ttl_seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + wait_seconds
    mine = {**_holder_info(), "expires_at": time.time() + ttl_seconds}
    while not storage.put_bytes_if_absent(S3_LOCK_KEY, json.dumps(mine).encode()):
        try:
            holder = json.loads(storage.get_bytes(S3_LOCK_KEY))
        except Exception:  # released between our write and this read: try again
            continue
        if holder.get("expires_at", 0) < time.time():
            storage.delete(S3_LOCK_KEY)  # a crashed holder's lock, past its time-to-live
            continue
        if time.monotonic() >= deadline:
            raise RunInProgress(
                f"lake {storage.uri} is in use by {_describe(holder)} (lock {storage.url(S3_LOCK_KEY)}); "
                f"waited {wait_seconds:g} s"
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    try:
        yield
    finally:
        storage.delete(S3_LOCK_KEY)
