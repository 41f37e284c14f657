"""The refined tables' builders: trusted snapshot -> one DataFrame per refined table.

Descriptive statistics in Spark SQL and K-Means clusters in Spark ML; plain
``DataFrame -> DataFrame`` functions, each named after the table it builds and named as
that table's builder in covidlake.schemas.REFINED_TABLES, which also says what it takes
(:func:`countries` or tables built before it). covidlake.refined.build calls them;
emr/analytics.py is the spark-submit entry point.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from covidlake.schemas import HDI_CATEGORIES, REFINED_TABLES

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


def _by_hdi(values: list[str]) -> str:
    """SQL CASE over HDI_CATEGORIES' lower bounds, best first: values[i] for the i-th category."""
    bounds = [bound for _, bound in HDI_CATEGORIES[:-1]]
    whens = " ".join(
        f"WHEN human_development_index >= {bound} THEN {value}" for bound, value in zip(bounds, values[:-1])
    )
    return f"CASE {whens} ELSE {values[-1]} END"


def hdi_analysis(countries: DataFrame) -> DataFrame:
    category = _by_hdi([f"'{name}'" for name, _ in HDI_CATEGORIES])
    rank = _by_hdi([str(rank) for rank in range(1, len(HDI_CATEGORIES) + 1)])
    return conform(
        _sql(
            countries,
            f"""WITH categorised AS (
                 SELECT {category} AS hdi_category,
                        {rank} AS rank,
                        cases_per_thousand, total_deaths_per_million
                 FROM {{countries}} WHERE human_development_index IS NOT NULL)
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
