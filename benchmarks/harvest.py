"""Harvest a whole list through its resumption tokens and print figures as JSON.

The default client is light (a regex finds the token, records are counted, no XML tree),
so the server, not the client, is measured; --parse parses every page with lxml. Pages
are asked for uncompressed (requests would otherwise ask for gzip on its own); --gzip asks
for gzip, to measure what compression costs.

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
    url: str, verb: str, set_spec: str | None, parse: bool, gzip: bool = False
) -> dict[str, float]:
    session = requests.Session()
    session.headers["Accept-Encoding"] = "gzip" if gzip else "identity"
    params = {"verb": verb, "metadataPrefix": "oai_dc"}
    if set_spec:
        params["set"] = set_spec
    latencies: list[float] = []
    count = 0
    started = time.perf_counter()
    while True:
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
    return {
        "records": count,
        "pages": len(latencies),
        "seconds": round(seconds, 2),
        "records_per_s": round(count / seconds),
        "first_page_ms": round(latencies[0] * 1000, 1),
        "median_page_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_page_ms": round(sorted(latencies)[int(len(latencies) * 0.95)] * 1000, 1),
        "last_page_ms": round(latencies[-1] * 1000, 1),
        "deep_over_first": round(last / first, 2),
    }


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
