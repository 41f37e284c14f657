"""The S3 run lock's races, run against moto's S3 (which honours If-None-Match on PUT and
If-Match on PUT and DELETE, as S3 does): every test marked ``attack`` is a row of
docs/security.md."""

from __future__ import annotations

import json
import threading

import boto3
import pytest
from moto import mock_aws

from covidlake.errors import RunInProgress
from covidlake.lock import S3_LOCK_KEY, run_lock
from covidlake.storage import S3Storage

attack = pytest.mark.attack


class CountingStorage(S3Storage):
    """S3Storage that counts reads of the lock and can hold every reader at a barrier."""

    def __init__(self, *args, barrier: threading.Barrier | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.barrier = barrier

    def get_with_etag(self, key):
        self.reads += 1
        found = super().get_with_etag(key)
        if self.barrier is not None and self.barrier.wait(timeout=10):
            # Both waiters have read the same lock; the second acts 0.2 s after the first, as
            # moto (unlike S3) does not make a conditional check and its write one step.
            threading.Event().wait(0.2)
        return found


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lock-test")
        yield client


def lock_body(s3) -> dict:
    return json.loads(s3.get_object(Bucket="lock-test", Key=S3_LOCK_KEY)["Body"].read())


def test_moto_honours_conditional_put_and_delete(s3):
    """What the lock relies on: if moto ignored the conditions, every race test below would be moot."""
    storage = S3Storage("lock-test", client=s3)
    etag = storage.put_bytes_conditional("k", b"one")
    assert etag and storage.put_bytes_conditional("k", b"two") is None
    assert storage.put_bytes_conditional("k", b"two", etag='"0000"') is None
    assert not storage.delete_if_match("k", '"0000"') and storage.get_with_etag("k")[0] == b"one"
    assert storage.delete_if_match("k", etag) and storage.get_with_etag("k") is None


@attack(
    9,
    "two waiters find the same expired lock at once",
    "one takes it over (If-Match on its ETag); the other gets RunInProgress",
)
def test_two_waiters_on_an_expired_lock_one_wins(s3):
    s3.put_object(Bucket="lock-test", Key=S3_LOCK_KEY, Body=json.dumps({"expires_at": 0, "pid": 1}).encode())
    barrier, loser_done = threading.Barrier(2), threading.Event()
    outcomes: list[str] = []
    tokens: list[str] = []

    def waiter():
        storage = CountingStorage("lock-test", client=s3, barrier=barrier)
        try:
            with run_lock(storage, wait_seconds=0):
                tokens.append(lock_body(s3)["token"])
                outcomes.append("held")
                loser_done.wait(timeout=10)  # hold the lock until the other has tried and given up
        except RunInProgress:
            outcomes.append("refused")
            loser_done.set()

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["held", "refused"]
    assert len(tokens) == 1
    assert S3Storage("lock-test", client=s3).get_with_etag(S3_LOCK_KEY) is None  # released by its holder


@attack(
    9,
    "a holder past its time-to-live releases after another run took the lock over",
    "the new holder's lock stays (release is If-Match on our own ETag)",
)
def test_release_leaves_a_lock_that_is_no_longer_ours(s3):
    storage = S3Storage("lock-test", client=s3)
    with run_lock(storage, ttl_seconds=-1):
        first = lock_body(s3)["token"]
        takeover = run_lock(storage)
        takeover.__enter__()
        second = lock_body(s3)["token"]
        assert second != first
    assert lock_body(s3)["token"] == second  # the old holder's release deleted nothing
    takeover.__exit__(None, None, None)
    assert storage.get_with_etag(S3_LOCK_KEY) is None


@attack(
    9,
    "a lock object that is not valid JSON, waiter allowed 1 s",
    "RunInProgress naming the invalid lock after backing off (a handful of reads, not 150,000)",
)
def test_invalid_json_lock_backs_off_to_the_deadline(s3):
    s3.put_object(Bucket="lock-test", Key=S3_LOCK_KEY, Body=b"{not json")
    storage = CountingStorage("lock-test", client=s3)
    with pytest.raises(RunInProgress, match="not valid JSON"), run_lock(storage, wait_seconds=1.0):
        pass
    assert 1 <= storage.reads <= 10  # 50 ms doubling: 0.05+0.1+0.2+0.4+0.25 s
    assert s3.get_object(Bucket="lock-test", Key=S3_LOCK_KEY)["Body"].read() == b"{not json"


def test_invalid_json_lock_older_than_the_ttl_is_taken_over(s3):
    s3.put_object(Bucket="lock-test", Key=S3_LOCK_KEY, Body=b"{not json")
    storage = S3Storage("lock-test", client=s3)
    with run_lock(storage, ttl_seconds=-1):  # written more than ttl ago: a crashed writer's
        assert "token" in lock_body(s3)
    assert storage.get_with_etag(S3_LOCK_KEY) is None


@attack(9, "three runs wait for one lake at once", "each holds the lock alone, one after another")
def test_waiters_take_turns(s3):
    holding, most, done = [0], [0], []
    guard = threading.Lock()

    def run(name: str):
        with run_lock(S3Storage("lock-test", client=s3), wait_seconds=30):
            with guard:
                holding[0] += 1
                most[0] = max(most[0], holding[0])
            threading.Event().wait(0.1)
            with guard:
                holding[0] -= 1
            done.append(name)

    threads = [threading.Thread(target=run, args=(str(i),)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(done) == ["0", "1", "2"] and most[0] == 1
