"""Upload the Spark jobs to the lake bucket after `sam deploy`.

    python scripts/deploy_jobs.py --stack-name covidlake      # bucket from the stack output
    python scripts/deploy_jobs.py --bucket my-lake-bucket      # or name it
    python scripts/deploy_jobs.py --stack-name covidlake --load-country-data   # and load country_data

Uploads to s3://<bucket>/code/ exactly what covidlake/emr_cluster.py points EMR at:
    code/covidlake.zip   the covidlake and emr packages (spark-submit --py-files)
    code/emr/<job>.py    every Spark job script in emr/ (etl.py, analytics.py)
    code/bootstrap.sh    the bootstrap action

With --load-country-data it then loads the bundled country_data into the stack's database
(host and secret from the stack, as `covidlake preflight` reads them; --db-url to go through a
port forward instead): everything a first run needs after `sam deploy`, in one command.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("covidlake", "emr")
CODE_PREFIX = "code"


def build_zip(dest: Path) -> Path:
    """covidlake.zip with the covidlake and emr packages; deterministic (fixed timestamps)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*.py")):
                if "__pycache__" in path.parts:
                    continue
                info = zipfile.ZipInfo(path.relative_to(ROOT).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return dest


def artifacts(zip_path: Path) -> dict[str, Path]:
    """S3 key -> local file, for everything the cluster needs."""
    jobs = sorted(p for p in (ROOT / "emr").glob("*.py") if p.name != "__init__.py")
    files = {f"{CODE_PREFIX}/covidlake.zip": zip_path, f"{CODE_PREFIX}/bootstrap.sh": ROOT / "emr" / "bootstrap.sh"}
    files.update({f"{CODE_PREFIX}/emr/{p.name}": p for p in jobs})
    return files


def bucket_from_stack(stack_name: str, cloudformation=None) -> str:
    import boto3

    cfn = cloudformation or boto3.client("cloudformation")
    outputs = cfn.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
    for out in outputs:
        if out["OutputKey"] == "LakeBucketName":
            return out["OutputValue"]
    raise SystemExit(f"stack {stack_name} has no LakeBucketName output")


def upload(bucket: str, files: dict[str, Path], s3=None) -> list[str]:
    import boto3

    s3 = s3 or boto3.client("s3")
    for key, path in files.items():
        s3.upload_file(str(path), bucket, key)
        print(f"uploaded s3://{bucket}/{key} ({path.stat().st_size} bytes)")
    return sorted(files)


def load_country_data_into_stack(stack_name: str, db_url: str | None = None, session=None) -> int:
    """The bundled country_data into the stack's database; returns the rows loaded."""
    import boto3

    sys.path.insert(0, str(ROOT))
    from covidlake.preflight import describe_stack, stack_db_url
    from covidlake.raw.postgres import load_country_data, redact
    from covidlake.settings import BUNDLED_DATA, get_settings

    session = session or boto3.session.Session()
    if db_url is None:
        stack = describe_stack(stack_name, session.client("cloudformation"))
        db_url = stack_db_url(stack, session.client("secretsmanager"))
    rows = load_country_data(db_url, BUNDLED_DATA / "country_data.csv", get_settings())
    print(f"loaded {rows} rows into country_data at {redact(db_url)}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upload the Spark jobs, bootstrap and covidlake.zip to the bucket")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--bucket")
    target.add_argument("--stack-name")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where covidlake.zip is built")
    parser.add_argument(
        "--load-country-data", action="store_true", help="then load country_data into the stack's database"
    )
    parser.add_argument("--db-url", help="with --load-country-data: reach the database through this URL instead")
    args = parser.parse_args(argv)
    if args.load_country_data and not (args.stack_name or args.db_url):
        parser.error("--load-country-data needs --stack-name (or --db-url)")
    files = artifacts(build_zip(args.dist / "covidlake.zip"))
    missing = [str(p) for p in files.values() if not p.is_file()]
    jobs = [k for k in files if k.startswith(f"{CODE_PREFIX}/emr/")]
    if missing or not jobs:
        print(f"missing job files: {missing or 'no emr/*.py jobs'}", file=sys.stderr)
        return 1
    bucket = args.bucket or bucket_from_stack(args.stack_name)
    upload(bucket, files)
    if args.load_country_data:
        load_country_data_into_stack(args.stack_name, args.db_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
