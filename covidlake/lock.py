"""One run at a time per lake.

A folder lake uses an OS file lock (released by the kernel if the holder dies); an S3
lake uses a conditional write of a lock object, which expires after a time-to-live so a
crashed holder cannot block the lake for ever. On AWS the state machine also refuses to
start a second execution (see statemachine/pipeline.asl.json).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from filelock import FileLock, Timeout

from covidlake.errors import RunInProgress
from covidlake.storage import LakeStorage, LocalStorage, S3Storage

LOCK_NAME = ".covidlake.lock"
S3_LOCK_KEY = "_locks/pipeline.json"
# An S3 lock older than this is a crashed holder's: longer than any run takes.
S3_LOCK_TTL_SECONDS = 6 * 3600  # six hours
# Waiting for the S3 lock: the first pause, doubled after each attempt up to the cap.
FIRST_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 1.0
log = logging.getLogger(__name__)


def _holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": datetime.now(UTC).isoformat()}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another run"
    return f"the run started at {holder.get('started_at')} by pid {holder.get('pid')} on {holder.get('host')}"


@contextmanager
def run_lock(
    storage: LakeStorage, wait_seconds: float = 0.0, ttl_seconds: float = S3_LOCK_TTL_SECONDS
) -> Iterator[None]:
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
    """Take the lock with If-None-Match: *, take over an expired one with If-Match on the ETag
    read, release with If-Match on our own ETag: of two waiters that find the same expired
    lock only one wins, and nobody deletes a lock that is not theirs. Between attempts the
    wait backs off (50 ms doubling to 1 s) and stops at the deadline, whatever the lock holds."""
    deadline = time.monotonic() + wait_seconds
    # A token makes each holder's bytes, and so its ETag, unique.
    body = json.dumps({**_holder_info(), "expires_at": time.time() + ttl_seconds, "token": uuid.uuid4().hex}).encode()
    delay = FIRST_RETRY_SECONDS
    while True:
        etag = storage.put_bytes_conditional(S3_LOCK_KEY, body)
        if etag:
            break
        current = storage.get_with_etag(S3_LOCK_KEY)
        holder = _parse_lock(current[0]) if current else None
        if current and _expired(holder, current[2], ttl_seconds):
            etag = storage.put_bytes_conditional(S3_LOCK_KEY, body, etag=current[1])
            if etag:
                log.warning("took over the expired lock %s (%s)", storage.url(S3_LOCK_KEY), _describe(holder))
                break
        if time.monotonic() >= deadline:
            what = _describe(holder) if holder or not current else "a lock that is not valid JSON"
            raise RunInProgress(
                f"lake {storage.uri} is in use by {what} (lock {storage.url(S3_LOCK_KEY)}); waited {wait_seconds:g} s"
            )
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, MAX_RETRY_SECONDS)
    try:
        yield
    finally:
        if not storage.delete_if_match(S3_LOCK_KEY, etag):
            log.warning("lock %s was no longer ours at release: left as it is", storage.url(S3_LOCK_KEY))


def _parse_lock(data: bytes) -> dict | None:
    try:
        holder = json.loads(data)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def _expired(holder: dict | None, last_modified: float, ttl_seconds: float) -> bool:
    """Past the holder's expires_at; a lock that cannot be read expires ttl after it was written."""
    if holder is not None and isinstance(holder.get("expires_at"), (int, float)):
        return holder["expires_at"] < time.time()
    return last_modified + ttl_seconds < time.time()
