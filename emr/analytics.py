"""Trusted -> refined: descriptive statistics in Spark SQL and K-Means clusters in
Spark ML, one typed Parquet table per entry of covidlake.schemas.REFINED_TABLES.

    spark-submit --py-files covidlake.zip analytics.py --lake s3://BUCKET [--run-id ID]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from covidlake.schemas import REFINED_TABLES, REFINED_VERSION_KEY

CLUSTER_FEATURES = ("human_development_index", "gdp_per_capita", "population_density")
K = 4
SEED = 42


def conform(df: DataFrame, table: str) -> DataFrame:
    """Exactly the registry's columns, in its order, with its types."""
    schema = REFINED_TABLES[table]
    return df.select(*[F.col(c.name).cast(c.type.spark()).alias(c.name) for c in schema.columns])


def countries(snapshot: DataFrame) -> DataFrame:
    """Rows with a continent, plus cases_per_thousand = total_cases / population * 1000."""
    return snapshot.where(F.col("continent").isNotNull()).withColumn(
        "cases_per_thousand", F.col("total_cases") / F.col("population") * 1000
    )


def _sql(df: DataFrame, query: str) -> DataFrame:
    return df.sparkSession.sql(query, countries=df)


def continent_stats(countries: DataFrame) -> DataFrame:
    return conform(
        _sql(
            countries,
            """SELECT continent, COUNT(*) AS countries FROM {countries}
               GROUP BY continent ORDER BY countries DESC, continent""",
        ),
        "continent_stats",
    )


def numeric_summary(countries: DataFrame) -> DataFrame:
    measures = ("total_cases", "total_deaths", "population", "cases_per_thousand")
    aggregates = ", ".join(f"AVG({m}) AS avg_{m}, MAX({m}) AS max_{m}" for m in measures)
    return conform(
        _sql(countries, f"SELECT COUNT(*) AS total_records, {aggregates} FROM {{countries}}"), "numeric_summary"
    )


def top_countries(countries: DataFrame, n: int = 10) -> DataFrame:
    return conform(
        _sql(
            countries,
            f"""SELECT location, continent, total_cases, population, cases_per_thousand
                FROM {{countries}} WHERE total_cases IS NOT NULL
                ORDER BY total_cases DESC, location LIMIT {int(n)}""",
        ),
        "top_countries",
    )


def correlation_analysis(countries: DataFrame) -> DataFrame:
    return conform(
        _sql(
            countries,
            """SELECT continent,
                      CORR(human_development_index, cases_per_thousand) AS hdi_cases_correlation,
                      CORR(gdp_per_capita, cases_per_thousand) AS gdp_cases_correlation,
                      CORR(population_density, cases_per_thousand) AS density_cases_correlation,
                      COUNT(*) AS country_count,
                      AVG(human_development_index) AS avg_hdi,
                      AVG(gdp_per_capita) AS avg_gdp
               FROM {countries}
               WHERE human_development_index IS NOT NULL AND cases_per_thousand IS NOT NULL
                 AND gdp_per_capita IS NOT NULL AND population_density IS NOT NULL
               GROUP BY continent
               ORDER BY hdi_cases_correlation DESC NULLS LAST, continent""",
        ),
        "correlation_analysis",
    )


def hdi_analysis(countries: DataFrame) -> DataFrame:
    return conform(
        _sql(
            countries,
            """WITH categorised AS (
                 SELECT CASE WHEN human_development_index >= 0.8 THEN 'Very High'
                             WHEN human_development_index >= 0.7 THEN 'High'
                             WHEN human_development_index >= 0.55 THEN 'Medium'
                             ELSE 'Low' END AS hdi_category,
                        CASE WHEN human_development_index >= 0.8 THEN 1
                             WHEN human_development_index >= 0.7 THEN 2
                             WHEN human_development_index >= 0.55 THEN 3
                             ELSE 4 END AS rank,
                        cases_per_thousand, total_deaths_per_million
                 FROM {countries} WHERE human_development_index IS NOT NULL)
               SELECT hdi_category, COUNT(*) AS countries,
                      AVG(cases_per_thousand) AS avg_cases_per_thousand,
                      AVG(total_deaths_per_million) AS avg_deaths_per_million
               FROM categorised GROUP BY hdi_category, rank ORDER BY rank""",
        ),
        "hdi_analysis",
    )


def cluster_input(countries: DataFrame) -> DataFrame:
    """Rows with all three features present and positive, sorted by location in one
    partition: K-Means depends on partitioning and order, so fix both."""
    present = [F.col(c).isNotNull() & (F.col(c) > 0) for c in CLUSTER_FEATURES]
    condition = present[0]
    for p in present[1:]:
        condition = condition & p
    return (
        countries.where(condition)
        .select("location", "continent", *CLUSTER_FEATURES, "cases_per_thousand")
        .repartition(1)
        .sortWithinPartitions("location")
    )


def clusters(countries: DataFrame, k: int = K, seed: int = SEED) -> DataFrame:
    from pyspark.ml import Pipeline
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    rows = cluster_input(countries).cache()
    pipeline = Pipeline(
        stages=[
            VectorAssembler(inputCols=list(CLUSTER_FEATURES), outputCol="features"),
            StandardScaler(inputCol="features", outputCol="scaled", withMean=True, withStd=True),
            KMeans(featuresCol="scaled", predictionCol="cluster", k=k, seed=seed),
        ]
    )
    predicted = pipeline.fit(rows).transform(rows)
    return conform(predicted.orderBy("location"), "clusters")


def cluster_summary(clustered: DataFrame) -> DataFrame:
    return conform(
        clustered.groupBy("cluster")
        .agg(
            F.count("*").alias("countries"),
            F.avg("human_development_index").alias("avg_hdi"),
            F.avg("gdp_per_capita").alias("avg_gdp"),
            F.avg("population_density").alias("avg_density"),
            F.avg("cases_per_thousand").alias("avg_cases_per_thousand"),
        )
        .orderBy("cluster"),
        "cluster_summary",
    )


def build_refined(snapshot: DataFrame) -> dict[str, DataFrame]:
    """The trusted snapshot -> every refined table, keyed by name."""
    base = countries(snapshot).cache()
    clustered = clusters(base).cache()
    tables = {
        "continent_stats": continent_stats(base),
        "numeric_summary": numeric_summary(base),
        "top_countries": top_countries(base),
        "correlation_analysis": correlation_analysis(base),
        "hdi_analysis": hdi_analysis(base),
        "clusters": clustered,
        "cluster_summary": cluster_summary(clustered),
    }
    assert list(tables) == list(REFINED_TABLES), "every refined table is built, in registry order"
    return tables


def write_refined(spark: SparkSession, storage, run_id: str) -> dict[str, int]:
    """Write every table to staging, publish them together, then the version marker."""
    snapshot = spark.read.parquet(storage.url("trusted/snapshot"))
    staging = storage.staging_prefix("refined", run_id)
    rows: dict[str, int] = {}
    try:
        for name, df in build_refined(snapshot).items():
            # One ordered file per table keeps the table's natural order for readers; its
            # rows are counted as it is written (no re-read, no second job).
            counted = Observation(f"refined_{name}")
            df.observe(counted, F.count(F.lit(1)).alias("rows")).coalesce(1).write.mode("overwrite").parquet(
                storage.url(f"{staging}/{name}")
            )
            rows[name] = counted.get["rows"]
        storage.publish({f"{staging}/{name}": f"refined/{name}" for name in rows})
    finally:
        storage.delete_prefix(staging)
    version = {"run_id": run_id, "published_at": datetime.now(UTC).isoformat(), "tables": rows}
    storage.put_bytes(REFINED_VERSION_KEY, json.dumps(version).encode())
    return rows


def main(argv: list[str] | None = None) -> int:
    from covidlake.storage import open_lake

    parser = argparse.ArgumentParser(description="covidlake analytics: trusted -> refined")
    parser.add_argument("--lake", required=True, help="lake root: s3://bucket or a folder")
    parser.add_argument("--run-id", default="manual")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("covidlake-analytics").getOrCreate()
    rows = write_refined(spark, open_lake(args.lake), args.run_id)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
