"""The old name of record_source.py, kept while ingest/ and store/ import from it."""

from .record_source import Field as Field
from .record_source import File as File
from .record_source import Header as Header
from .record_source import Position as Position
from .record_source import RecordSource as RecordSource
from .record_source import Selection as Selection
from .record_source import SetInfo as SetInfo
from .record_source import StoredRecord as StoredRecord
