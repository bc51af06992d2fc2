"""The photo stage on a Dask cluster (the ``dask`` extra): the manifest of photo jobs, one
task per shard run by the project's own downloader on a worker, cluster-wide budgets."""
