"""Stand-in job code where `make deploy-jobs` puts it, so create_emr's pre-cluster check passes."""

from __future__ import annotations

from covidlake.emr_cluster import JOB_CODE_FILES


def upload_job_code(s3, bucket: str, skip: str | None = None) -> None:
    """Every JOB_CODE_FILES object under code/ (stand-in bytes), except `skip`."""
    for name in JOB_CODE_FILES:
        if name != skip:
            s3.put_object(Bucket=bucket, Key=f"code/{name}", Body=b"job code")
