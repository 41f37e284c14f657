"""The raw zone: both sources captured byte for byte, checked, content-addressed.

capture.py   a captured file and the streaming CSV checks (header, UTF-8, width, rows)
download.py  the COVID facts over HTTP(S)
postgres.py  the country attributes from PostgreSQL (connect, extract, load)
ingest.py    both captures into raw/, deduplicated, with a manifest per new version

Runs in the ingest Lambda: nothing here imports pyspark, pandas, pyarrow or duckdb.
"""
