"""An OAI-PMH 2.0 data provider for DSpace-style qualified Dublin Core records.

Importing the package loads neither Flask nor SQLAlchemy: the protocol core is usable,
and testable, without the web or the database.
"""

from importlib.metadata import PackageNotFoundError, version

try:  # pyproject.toml's version, the one place it is written
    __version__ = version("oaipmh-server")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
