"""Harvest a whole list through its resumption tokens and print figures as JSON.

The default client is light (a regex finds the token, records are counted, no XML tree),
so the server, not the client, is measured; --parse parses every page with lxml. Pages
are asked for uncompressed (requests would otherwise ask for gzip on its own); --gzip asks
for gzip, to measure what compression costs.

Deep pages against first pages, two ways: `deep_over_first` is the median latency of the
last 5 % of pages over that of the first 5 %, as they came in the harvest;
`deep_over_first_paired` asks again for pages of both ends (up to 50 of each, by the
tokens the harvest was given), alternately, a first page then a deep one, twice. The
harvest's own ratio also holds whatever the machine's speed did between its beginning and
its end (on a shared machine it moves by tens of percent within a minute); the paired one
compares pages asked for moments apart, so only the depth differs.

    python3 benchmarks/harvest.py http://127.0.0.1:5000/oai ListRecords [--set S] [--parse] [--gzip]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time

import requests

TOKEN = re.compile(rb"<resumptionToken[^>]*>([^<]+)</resumptionToken>")


def harvest(
    url: str,
    verb: str,
    set_spec: str | None,
    parse: bool,
    gzip: bool = False,
    paired: bool = True,
) -> dict[str, float | None]:
    """The figures of one whole harvest; with `paired` False, no deep/first pages asked
    again (against a server paging by OFFSET, a million records deep, they take seconds
    each: the reference's paired pass at 1,000,000 on PostgreSQL outlasted its harvest)."""
    session = requests.Session()
    session.headers["Accept-Encoding"] = "gzip" if gzip else "identity"
    params = {"verb": verb, "metadataPrefix": "oai_dc"}
    if set_spec:
        params["set"] = set_spec
    latencies: list[float] = []
    asked: list[dict[str, str]] = []
    count = 0
    started = time.perf_counter()
    while True:
        asked.append(params)
        before = time.perf_counter()
        body = session.get(url, params=params, timeout=120).content
        latencies.append(time.perf_counter() - before)
        if parse:
            from lxml import etree

            count += len(etree.fromstring(body).findall(".//{*}header"))
        else:
            count += body.count(b"<header")
        token = TOKEN.search(body)
        if token is None:
            break
        params = {"verb": verb, "resumptionToken": token.group(1).decode()}
    seconds = time.perf_counter() - started
    tail = max(1, len(latencies) // 20)
    first, last = statistics.median(latencies[:tail]), statistics.median(latencies[-tail:])
    pairs = _paired(session, url, asked[1 : tail + 1], asked[-tail:]) if paired else (None, 0)
    return {
        "records": count,
        "pages": len(latencies),
        # Every request sent, the deep/first pages asked again included (a server's CPU
        # over the harvest is shared among these).
        "requests": len(latencies) + pairs[1],
        "seconds": round(seconds, 2),
        "records_per_s": round(count / seconds),
        "first_page_ms": round(latencies[0] * 1000, 1),
        "median_page_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_page_ms": round(sorted(latencies)[int(len(latencies) * 0.95)] * 1000, 1),
        "last_page_ms": round(latencies[-1] * 1000, 1),
        "deep_over_first": round(last / first, 2),
        "deep_over_first_paired": pairs[0],
    }


def _paired(
    session: requests.Session,
    url: str,
    firsts: list[dict[str, str]],
    deeps: list[dict[str, str]],
) -> tuple[float | None, int]:
    """Median latency of deep pages over first pages, asked for alternately (see above),
    and how many were asked; None for a list too short to have both."""
    step = max(1, len(firsts) // 50)
    firsts, deeps = firsts[::step][:50], deeps[::step][:50]
    times: dict[str, list[float]] = {"first": [], "deep": []}
    for _ in range(2):
        for pair in zip(firsts, deeps, strict=False):
            for end, params in zip(("first", "deep"), pair, strict=True):
                before = time.perf_counter()
                session.get(url, params=params, timeout=120).content  # noqa: B018
                times[end].append(time.perf_counter() - before)
    asked = len(times["first"]) + len(times["deep"])
    if not times["first"]:
        return None, asked
    ratio = round(statistics.median(times["deep"]) / statistics.median(times["first"]), 2)
    return ratio, asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("verb", choices=["ListRecords", "ListIdentifiers"])
    parser.add_argument("--set", dest="set_spec")
    parser.add_argument("--parse", action="store_true")
    parser.add_argument("--gzip", action="store_true")
    arguments = parser.parse_args()
    figures = harvest(
        arguments.url, arguments.verb, arguments.set_spec, arguments.parse, arguments.gzip
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
