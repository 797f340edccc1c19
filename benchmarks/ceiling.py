"""The ceiling: the least a server can do to serve the same harvest, as a WSGI app.

Stored oai_dc fragments read by keyset straight from the store and joined into a minimal
envelope; the token is the last "datestamp|id". It reads the store the real server reads,
SQLite or PostgreSQL (driver.py: the bare driver, autocommit, no SQLAlchemy). Served by
the same gunicorn and harvested by the same client as the real server, it bounds what the
real one can reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from driver import connect

PAGE = """SELECT r.local_id, r.datestamp, f.body FROM records r
JOIN fragments f ON f.local_id = r.local_id AND f.prefix = 'oai_dc'
WHERE (r.datestamp, r.local_id) > (?, ?) ORDER BY r.datestamp, r.local_id LIMIT 101"""
connection = connect()
# Before every datestamp, as SQLite's text and as PostgreSQL's timestamp.
START = "1970-01-01 00:00:00|"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    token = parse_qs(environ.get("QUERY_STRING", "")).get("resumptionToken", [START])[0]
    after = token.split("|", 1)
    rows = connection.execute(PAGE, after).fetchall()
    parts = [
        b'<?xml version="1.0" encoding="UTF-8"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
    ]
    for local_id, _datestamp, body in rows[:100]:
        parts += [
            b"<record><header><identifier>oai:x:",
            local_id.encode(),
            b"</identifier></header><metadata>",
            body,
            b"</metadata></record>",
        ]
    if len(rows) > 100:
        parts += [
            b"<resumptionToken>",
            f"{rows[99][1]}|{rows[99][0]}".encode(),
            b"</resumptionToken>",
        ]
    parts.append(b"</ListRecords></OAI-PMH>")
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
    return [b"".join(parts)]
