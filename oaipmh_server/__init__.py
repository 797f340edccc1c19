"""An OAI-PMH 2.0 data provider for DSpace-style qualified Dublin Core records.

Importing the package loads neither Flask nor SQLAlchemy: the protocol core is usable,
and testable, without the web or the database.
"""

__version__ = "0.1.0"
