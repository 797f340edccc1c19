"""The tests' throw-away PostgreSQL cluster: benchmarks/postgres.py, shared with
`benchmarks/run.py --backend postgresql` so both start and remove it the same way."""

from benchmarks.postgres import Cluster, find_bindir

__all__ = ["Cluster", "find_bindir"]
