"""`oaipmh-server harvests` on crafted access lines: which harvests completed, where the others
stopped and why, by harvester, from odd logs (junk lines, an older version's lines without
harvest ids, several servers interleaved). The same report of real harvesters' runs against
a live server is in tests/test_harvest_report_live.py."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from oaipmh_server.cli import main
from oaipmh_server.harvest_report import as_json, as_table, merged, report
from oaipmh_server.harvesters import known_name

from .cli import invoke

AGENT = "OpenAIRE harvester/2.0"
UNSET = object()


def line(
    time: str,
    cursor: int | None = 0,
    *,
    harvest: str | None = "h1",
    count: int = 10,
    size: int = 30,
    more: bool | None = None,
    token: bool | None = None,
    agent: str = AGENT,
    client: str = "192.0.2.7",
    status: int = 200,
    errors: tuple[str, ...] = (),
    arguments: dict[str, str] | None = None,
    logged: Any = UNSET,
) -> str:
    """One access line as the server writes it, for a page of a ListRecords chain."""
    resumed = cursor != 0 if token is None else token
    args = arguments or (
        {"verb": "ListRecords", "resumptionToken": f"token-{cursor}"}
        if resumed
        else {"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": "openaire"}
    )
    served = status == 200 and not errors
    page: Any = (
        {"id": harvest, "cursor": cursor, "count": count, "size": size,
         "more": (cursor or 0) + count < size if more is None else more}
        if served
        else {"id": harvest, "cursor": cursor}
    )  # fmt: skip
    entry = {
        "time": f"2026-12-01T{time}Z", "client": client, "agent": agent, "method": "GET",
        "path": "/oai", "status": status, "verb": "ListRecords" if status == 200 else None,
        "arguments": args, "records": count if served else 0, "errors": list(errors),
        "harvest": page if logged is UNSET else logged, "ms": 3.1,
    }  # fmt: skip
    if logged is None:
        del entry["harvest"]  # an older version's line
    return json.dumps(entry)


def run(*lines: str, quiet: timedelta = timedelta(hours=1)) -> list[dict[str, Any]]:
    return [h.as_json() for h in report(merged([lines]), quiet)]


def test_a_chain_followed_to_its_last_page_is_complete() -> None:
    (who,) = run(line("08:00:00.000", 0), line("08:00:01.500", 10), line("08:00:03.000", 20))
    assert (who["user_agent"], who["address"], who["name"]) == (AGENT, "192.0.2.7", "OpenAIRE")
    assert who["incomplete"] == []
    assert who["complete"] == [{
        "id": "h1", "verb": "ListRecords", "format": "oai_dc", "set": "openaire",
        "from": None, "until": None, "pages": 3, "records": 30, "list_size": 30,
        "first_request": "2026-12-01T08:00:00.000Z", "last_request": "2026-12-01T08:00:03.000Z",
        "duration_seconds": 3.0,
    }]  # fmt: skip
    assert who["errors"] == {}
    assert who["last_seen"] == "2026-12-01T08:00:03.000Z"


def test_a_chain_that_goes_quiet_stopped_where_its_last_token_points() -> None:
    (who,) = run(
        line("08:00:00.000", 0), line("08:00:01.000", 10),
        line("10:00:00.000", 0, harvest="h2", arguments={"verb": "ListRecords", "metadataPrefix": "oai_dc"}),
    )  # fmt: skip
    stopped, under_way = who["incomplete"]
    assert (stopped["id"], stopped["pages"], stopped["records"]) == ("h1", 2, 20)
    assert stopped["stopped_at"] == 20
    assert stopped["reason"] == "no request for 1 h"
    assert (under_way["id"], under_way["stopped_at"]) == ("h2", 10)
    assert under_way["reason"] == "still under way when the log ends"
    assert who["complete"] == []


def test_a_chain_still_open_when_the_log_ends() -> None:
    (who,) = run(line("08:00:00.000", 0))
    (open_chain,) = who["incomplete"]
    assert open_chain["stopped_at"] == 10
    assert open_chain["reason"] == "still under way when the log ends"


def test_a_chain_turned_away_with_503_says_so() -> None:
    (who,) = run(
        line("08:00:00.000", 0), line("08:00:01.000", 10),
        line("08:00:02.000", 20, status=503), line("08:00:32.000", 20, status=503),
    )  # fmt: skip
    (stopped,) = who["incomplete"]
    assert stopped["stopped_at"] == 20
    assert stopped["reason"].startswith("turned away with 503")
    assert stopped["reason"].endswith("then still under way when the log ends")
    assert who["errors"] == {"HTTP 503": 2}


def test_a_503_then_the_page_served_is_complete() -> None:
    """Turned away once, retried after Retry-After and served: nothing was lost."""
    (who,) = run(
        line("08:00:00.000", 0), line("08:00:01.000", 10, status=503),
        line("08:00:31.000", 10), line("08:00:32.000", 20),
    )  # fmt: skip
    assert [h["pages"] for h in who["complete"]] == [3]
    assert who["incomplete"] == []
    assert who["errors"] == {"HTTP 503": 1}


def test_a_refused_token_stops_the_chain() -> None:
    (who,) = run(line("08:00:00.000", 0), line("08:00:01.000", 10, errors=("badResumptionToken",)))
    (stopped,) = who["incomplete"]
    assert stopped["stopped_at"] == 10
    assert "its token was refused (badResumptionToken)" in stopped["reason"]
    assert who["errors"] == {"badResumptionToken": 1}


@pytest.mark.parametrize(
    ("status", "errors"), [(200, ("badResumptionToken",)), (503, ())], ids=["refused", "503"]
)
def test_a_token_that_is_none_of_ours_is_an_error_not_a_harvest(
    status: int, errors: tuple[str, ...]
) -> None:
    """`check URL` (or a scanner, or a harvester that garbled its token) resumes with a
    token this server never handed out: its line names no harvest (`"harvest": null`, as
    this version logs an unreadable token). It is counted as the error it is, not reported
    as an incomplete harvest "logged without harvest ids (an older version)"."""
    resumed = {"verb": "ListIdentifiers", "resumptionToken": "not-a-token-0000"}
    garbage = line("08:00:05.000", None, token=True, status=status, errors=errors,
                   arguments=resumed, logged=UNSET)  # fmt: skip
    entry = json.loads(garbage)
    entry["harvest"] = None
    (who,) = run(line("08:00:00.000", 0, count=30), json.dumps(entry))
    assert [h["pages"] for h in who["complete"]] == [1]
    assert who["incomplete"] == []
    assert who["errors"] == ({"badResumptionToken": 1} if errors else {"HTTP 503": 1})


def test_a_page_missing_from_the_log_makes_the_harvest_incomplete() -> None:
    (who,) = run(line("08:00:00.000", 0), line("08:00:02.000", 20))
    (gap,) = who["incomplete"]
    assert gap["reason"] == "pages missing from the log: positions 10 to 19"
    assert gap["pages"] == 2


def test_a_page_asked_again_is_counted_once() -> None:
    (who,) = run(
        line("08:00:00.000", 0), line("08:00:01.000", 10), line("08:00:02.000", 10),
        line("08:00:03.000", 20),
    )  # fmt: skip
    assert [(h["pages"], h["records"]) for h in who["complete"]] == [(3, 30)]


def test_no_records_remain_ends_the_list() -> None:
    """Every record left changed after the list began: the server ends it with
    noRecordsMatch (the changes are in the next incremental harvest), nothing missed."""
    (who,) = run(
        line("08:00:00.000", 0), line("08:00:01.000", 10, errors=("noRecordsMatch",)),
    )  # fmt: skip
    assert [h["pages"] for h in who["complete"]] == [1]


def test_a_chain_begun_before_the_log_is_incomplete() -> None:
    (who,) = run(line("08:00:01.000", 10), line("08:00:02.000", 20))
    (partial,) = who["incomplete"]
    assert partial["reason"] == "its first page is not in the log (begun before it?)"
    assert (partial["format"], partial["pages"]) == (None, 2)


def test_a_list_answered_in_one_page_is_complete() -> None:
    (who,) = run(line("08:00:00.000", 0, count=5, size=5))
    assert [(h["pages"], h["records"]) for h in who["complete"]] == [(1, 5)]


def test_junk_lines_are_skipped() -> None:
    junk = [
        "oaipmh-server: listening at http://127.0.0.1:5000 (2 workers, master pid 7)",
        "", "{", "[1, 2]", '{"time": 7}', '{"no": "time"}', "\x00\xff garbage",
        '{"time": "2026-12-01T08:00:00.500Z", "path": "/healthz", "status": 200}',
        '{"time": "yesterday", "arguments": {"verb": "Identify"}}',
        '{"time": "2026-12-01T08:00:00.700Z", "arguments": {"verb": "Identify"}, "agent": [1],'
        ' "client": {"a": 1}, "errors": "badVerb", "status": 503.5}',
        '{"time": "2026-12-01 08:00:00", "arguments": {"verb": "Identify"}}',
        '{"time": "2026-12-01T08:00:00.600Z", "arguments": {"verb": "ListRecords", "x": [1]},'
        ' "harvest": "odd", "status": "200", "errors": null}',
    ]  # fmt: skip
    journal = "Dec 01 08:00:01 host oaipmh-server[812]: " + line("08:00:01.000", 10)
    odd, who = run(line("08:00:00.000", 0), *junk, journal, line("08:00:02.000", 20))
    assert [h["pages"] for h in who["complete"]] == [3]
    # OAI-PMH requests in odd shapes: counted, no harvest made of them
    assert (odd["user_agent"], odd["address"], odd["requests"]) == (None, None, 2)
    assert odd["complete"] == odd["incomplete"] == []


def test_lines_timed_at_no_real_moment_are_skipped() -> None:
    """A time of the access line's form that is no moment (a 30 February, digits of
    another script, which `\\d` matches, one with no hour before it): junk like the rest,
    not a traceback of the whole report (a line's time is compared with the time a chain
    goes quiet, an hour before it)."""
    digits = "".join(chr(0x0660 + int(c)) for c in "2026")  # Arabic-Indic
    others = [
        line("08:00:01.000", 10).replace("2026-12-01T", "2026-02-30T"),
        line("08:00:01.000", 10).replace("2026-12-01T", f"{digits}-12-01T"),
        line("00:00:00.000", 10).replace("2026-12-01T", "0001-01-01T"),  # an hour before: none
    ]
    (who,) = run(line("08:00:00.000", 0), *others, line("08:00:01.000", 10),
                 line("08:00:02.000", 20))  # fmt: skip
    assert [(h["pages"], h["records"]) for h in who["complete"]] == [(3, 30)]


def test_lines_of_an_older_version_are_followed_but_never_complete() -> None:
    """Lines written before harvest ids: the pages are followed by harvester and verb and
    counted, but nothing in them says where the list ended."""
    (who,) = run(
        line("08:00:00.000", 0, logged=None), line("08:00:01.000", 10, logged=None),
        line("08:00:02.000", 20, logged=None),
        line("09:00:00.000", 0, logged=None), line("09:00:01.000", 10, logged=None),
    )  # fmt: skip
    assert who["complete"] == []
    first, second = who["incomplete"]
    assert (first["pages"], first["records"], second["pages"]) == (3, 30, 2)
    assert first["stopped_at"] is None
    assert first["reason"] == (
        "logged without harvest ids (an older version): whether every page was served is unknown"
    )


def test_a_token_from_before_the_upgrade_continues_without_an_id() -> None:
    """An older version's first page, then a page resumed with its (id-less) token on the
    upgraded server: one chain, whose last page is known."""
    (who,) = run(
        line("08:00:00.000", 0, logged=None),
        line("08:00:01.000", 10, harvest=None), line("08:00:02.000", 20, harvest=None),
    )  # fmt: skip
    (chain,) = who["incomplete"]
    assert chain["pages"] == 3
    assert chain["reason"].startswith("logged without harvest ids")


def test_several_servers_interleaved(tmp_path: Path) -> None:
    """Two servers behind a proxy, each its own log: one chain's pages alternate between
    them, and another harvester's lines are mixed in. Read side by side, merged by time."""
    one = [
        line("08:00:00.000", 0, size=40),
        line("08:00:02.000", 20, size=40),
        line("08:00:01.200", 0, harvest="b", agent="CORE/1.0", client="198.51.100.3"),
    ]
    two = [
        line("08:00:01.000", 10, size=40),
        line("08:00:03.000", 30, size=40),
        line("08:00:01.500", 10, harvest="b", agent="CORE/1.0", client="198.51.100.3"),
    ]
    one.sort(key=lambda text: json.loads(text)["time"])
    two.sort(key=lambda text: json.loads(text)["time"])
    (tmp_path / "one.log").write_text("\n".join(one) + "\n")
    with gzip.open(tmp_path / "two.log.gz", "wt") as compressed:
        compressed.write("\n".join(two) + "\n")
    ran = invoke(
        "harvests", "--format", "json", str(tmp_path / "one.log"), str(tmp_path / "two.log.gz")
    )
    assert ran.returncode == 0, ran.stderr
    core, openaire = json.loads(ran.stdout)
    assert [h["pages"] for h in openaire["complete"]] == [4]
    assert core["name"] == "CORE"
    assert [(h["id"], h["stopped_at"]) for h in core["incomplete"]] == [("b", 20)]


def test_errors_by_code_and_cadence() -> None:
    day = [line(f"0{hour}:00:00.000", 0, harvest=f"d{hour}", count=5, size=5,
                arguments={"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": f"2026-11-30T0{hour - 1}:00:00Z"})
           for hour in (1, 3, 5)]  # fmt: skip
    odd = [
        line("06:00:00.000", None, status=200, errors=("badArgument",), logged=None,
             arguments={"verb": "ListRecords"}),
        line("06:00:01.000", None, status=200, errors=("cannotDisseminateFormat",), logged=None,
             arguments={"verb": "ListRecords", "metadataPrefix": "marc"}),
    ]  # fmt: skip
    (who,) = run(*day, *odd, quiet=timedelta(minutes=30))
    assert len(who["complete"]) == 3
    assert who["errors"] == {"badArgument": 1, "cannotDisseminateFormat": 1}
    assert who["cadence"] == [{
        "verb": "ListRecords", "format": "oai_dc", "set": None, "harvests": 3,
        "every_seconds": 7200.0,
        "from": ["2026-11-30T00:00:00Z", "2026-11-30T02:00:00Z", "2026-11-30T04:00:00Z"],
    }]  # fmt: skip
    assert who["last_seen"] == "2026-12-01T06:00:01.000Z"


def test_table_for_a_repository_manager() -> None:
    harvesters = report(merged([[
        line("08:00:00.000", 0), line("08:00:01.000", 10), line("08:00:02.000", 20),
        line("09:00:00.000", 0, harvest="h2"), line("09:00:01.000", 10, harvest="h2", status=503),
    ]]))  # fmt: skip
    table = "\n".join(as_table(harvesters))
    assert table.splitlines()[:2] == [
        f"OpenAIRE: {AGENT}", "  address 192.0.2.7, 5 requests, last seen 2026-12-01T09:00:01.000Z",
    ]  # fmt: skip
    assert "complete   ListRecords oai_dc set=openaire: 3 pages, 30 records, " in table
    assert "incomplete ListRecords oai_dc set=openaire: 1 page, 10 records of 30" in table
    assert "stopped at position 10 of 30: turned away with 503" in table
    assert "errors     HTTP 503 1" in table


def test_table_names_a_list_of_sets_without_a_format() -> None:
    """ListSets takes no metadataPrefix: its line names no format (no "?", which reads as
    one unknown) and counts sets, not records; a list whose first page is not in the log
    still shows "?" for the format it was asked in. One is one record, not "1 records"."""
    sets = line("08:00:00.000", 0, count=10, size=10, arguments={"verb": "ListSets"})
    one = line("08:30:00.000", 0, harvest="h3", count=1, size=1)
    later = line("09:00:01.000", 10, harvest="h2")
    table = "\n".join(as_table(report(merged([[sets, one, later]]))))
    assert "  complete   ListSets: 1 page, 10 sets, " in table
    assert "  complete   ListRecords oai_dc set=openaire: 1 page, 1 record, " in table
    assert "  incomplete ListRecords ?: 1 page, 10 records" in table


def test_command_reads_standard_input_and_says_so_when_empty(tmp_path: Path) -> None:
    ran = invoke("harvests", env=None)
    assert (ran.returncode, ran.stdout.strip()) == (0, "No OAI-PMH requests in the log.")
    missing = invoke("harvests", str(tmp_path / "nope.log"))
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    assert "does not exist" in missing.stderr
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(gzip.compress(("\n".join([line("08:00:00.000", 0)] * 50)).encode())[:60])
    ran = invoke("harvests", str(broken))
    assert ran.returncode == 1
    assert ran.stderr.startswith("Error: cannot read the log")
    # Damaged inside (a bad sector, a copy cut and joined): zlib's own error, not OSError.
    damaged = bytearray(gzip.compress("".join(f"{line(f'08:{m:02d}:00.000', m)}\n"
                                              for m in range(50)).encode()))  # fmt: skip
    damaged[40:60] = bytes(b ^ 0x5A for b in damaged[40:60])
    broken.write_bytes(bytes(damaged))
    ran = invoke("harvests", str(broken))
    assert (ran.returncode, ran.stderr.splitlines()[0][:28]) == (1, "Error: cannot read the log: ")
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    ("agent", "name"),
    [
        ("OpenAIRE harvester/2.0", "OpenAIRE"),
        ("Mozilla/5.0 (compatible; CORE/0.6; +https://core.ac.uk)", "CORE"),
        ("BASE (Bielefeld Academic Search Engine) OAI-Harvester", "BASE"),
        ("Googlebot-IA/2.1", "Google Scholar"),
        ("Europe PMC OAI harvester", "Europe PMC"),
        ("python-requests/2.32.3", None),
        ("the core of it", None),
        (None, None),
    ],
)
def test_known_aggregators_named(agent: str | None, name: str | None) -> None:
    assert known_name(agent) == name


def test_command_reads_standard_input() -> None:
    """`journalctl … | oaipmh-server harvests`: the log on standard input, undecodable
    bytes and all."""
    log = "\n".join([line("08:00:00.000", 0), "\udcff", line("08:00:01.000", 10, size=20)])
    result = CliRunner().invoke(
        main, ["harvests", "--format", "json"], input=log.encode("utf-8", "surrogateescape")
    )
    assert result.exit_code == 0, result.output
    (who,) = json.loads(result.stdout)
    assert [h["pages"] for h in who["complete"]] == [2]


def test_a_chain_taken_up_again_after_a_long_pause_is_complete() -> None:
    """Quiet for longer than --quiet-minutes (say, a long Retry-After), then the next
    token: the same chain goes on, and is complete at its last page."""
    (who,) = run(
        line("08:00:00.000", 0), line("08:00:01.000", 10, status=503),
        line("10:30:00.000", 10), line("10:30:01.000", 20),
    )  # fmt: skip
    assert who["incomplete"] == []
    (harvest,) = who["complete"]
    assert (harvest["pages"], harvest["duration_seconds"]) == (3, 9001.0)


def month_of_small_harvests(harvesters: int, each: int) -> list[str]:
    """A month's incremental harvests: `each` one-page lists from= a date by each of
    `harvesters` harvesters, in time order."""
    lines = []
    for n in range(harvesters * each):
        day, rest = divmod(n, 1440 * 60)
        moment = f"2026-12-{1 + day % 28:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}.000"
        entry = json.loads(line("00:00:00.000", 0, harvest=f"{n:08x}", count=7, size=7,
                                agent=f"Harvester{n % harvesters}/1.0"))  # fmt: skip
        entry["time"] = moment + "Z"
        entry["arguments"]["from"] = "2026-11-30T00:00:00Z"
        lines.append(json.dumps(entry))
    return lines


def test_a_month_of_small_harvests_is_kept_in_little_memory() -> None:
    """The report keeps every harvest of the log (it lists each), so what one costs is
    what a month of incremental harvests costs: 450,000 of them made a 1.8 GB process
    for the JSON report. Kept, each is a few hundred bytes, and the JSON is written a
    harvester at a time, never the whole report at once."""
    lines = month_of_small_harvests(harvesters=100, each=100)
    tracemalloc.start()
    try:
        harvesters = report(merged([lines]))
        kept, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        written = sum(len(chunk) for chunk in as_json(harvesters))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(len(who.complete) for who in harvesters) == 10_000
    assert kept / 10_000 < 400  # bytes a harvest (about 900 before)
    assert peak - kept < written / 3  # about 7 times what was written, before


def test_the_json_report_written_in_pieces_is_the_whole_report() -> None:
    harvesters = report(merged([month_of_small_harvests(harvesters=3, each=4)]))
    document = json.loads("".join(as_json(harvesters)))
    assert [len(who["complete"]) for who in document] == [4, 4, 4]
    assert document == json.loads(json.dumps([who.as_json() for who in harvesters]))
    assert "".join(as_json([])) == "[]"
