"""Both lake backends answer a missing key the same way: FileNotFoundError, so callers
never look at boto error codes; and an S3 error that is not "missing" is not hidden."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from covidlake.query import read_version
from covidlake.schemas import REFINED_VERSION_KEY
from covidlake.storage import LocalStorage, S3Storage


@pytest.fixture
def s3_lake():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="lake")
        yield S3Storage("lake", "prefix", client=client)


def test_local_storage_raises_file_not_found_for_a_missing_key(tmp_path):
    storage = LocalStorage(tmp_path)
    with pytest.raises(FileNotFoundError):
        storage.get_bytes("refined/nothing.json")
    storage.put_bytes("refined/something.json", b"{}")
    assert storage.get_bytes("refined/something.json") == b"{}"


def test_s3_storage_raises_file_not_found_for_a_missing_key(s3_lake):
    with pytest.raises(FileNotFoundError, match="s3://lake/prefix/refined/nothing.json"):
        s3_lake.get_bytes("refined/nothing.json")
    s3_lake.put_bytes("refined/something.json", b"{}")
    assert s3_lake.get_bytes("refined/something.json") == b"{}"


def test_s3_storage_passes_other_errors_through(s3_lake):
    gone = S3Storage("no-such-bucket", client=s3_lake.client)
    with pytest.raises(ClientError) as raised:
        gone.get_bytes("refined/nothing.json")
    assert not isinstance(raised.value, FileNotFoundError)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_version_is_none_before_the_first_publish_in_both_backends(backend, tmp_path, s3_lake):
    storage = LocalStorage(tmp_path) if backend == "local" else s3_lake
    assert read_version(storage) is None
    storage.put_bytes(REFINED_VERSION_KEY, b'{"run_id": "r1"}\n')
    assert read_version(storage) == '{"run_id": "r1"}'
