"""An OAI-PMH 2.0 data provider for DSpace-style qualified Dublin Core records.

Importing the package loads neither Flask nor SQLAlchemy: the protocol core is usable,
and testable, without the web or the database.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__`, pyproject.toml's (the one place it is written), read from the
    installed package's metadata when first asked. Read at import, it was 50 ms of CPU in
    every process (importlib.metadata parses the metadata file with the email package),
    most of which never print it: a server worker, a load, `stats`."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("oaipmh-server")
    except PackageNotFoundError:  # a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
