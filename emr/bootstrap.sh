#!/bin/bash
# covidlake EMR bootstrap action: runs on every node before Spark starts.
# Minimal on purpose: the Spark jobs (emr/etl.py, emr/analytics.py) need nothing beyond
# EMR's own PySpark except boto3 for covidlake.storage, pinned here for repeatable runs.
# Uploaded to s3://<bucket>/code/bootstrap.sh by `make deploy-jobs`.
set -euo pipefail

BOTO3_VERSION="1.35.99"   # a release that supports the Python 3.9 of EMR 7 (Amazon Linux 2023)

if ! python3 -m pip --version >/dev/null 2>&1; then
  sudo dnf install -y -q python3-pip
fi
sudo python3 -m pip install --quiet --no-cache-dir "boto3==${BOTO3_VERSION}"
python3 -c 'import boto3; print("covidlake bootstrap: boto3", boto3.__version__)'
