"""The old name of record_source.py, kept while ingest/ and store/ import from it."""

from .record_source import DOT_SEGMENT as DOT_SEGMENT
from .record_source import UNREACHABLE_ID as UNREACHABLE_ID
from .record_source import Field as Field
from .record_source import File as File
from .record_source import Header as Header
from .record_source import Position as Position
from .record_source import RecordSource as RecordSource
from .record_source import Selection as Selection
from .record_source import SetInfo as SetInfo
from .record_source import StoredRecord as StoredRecord
from .record_source import leads_elsewhere as leads_elsewhere
from .record_source import spec_leads_elsewhere as spec_leads_elsewhere
