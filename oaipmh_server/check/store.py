"""`oaipmh-server check`: every record of the store against an aggregator profile's rules.

One pass over the store in local id order (keyset batches), each record checked against
each rule of the profile; failures are written to a temporary file as they come, so a
million records take constant memory and the summary (which needs the whole pass) can
still come first. Exit status 1 when a record fails a mandatory rule of the profile.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

from ..crosswalk import Crosswalk
from ..links import linker_of
from ..meanings import vocabularies_of
from ..record_source import Field, File
from ..settings import Settings
from .rules import RecordView, Rule, rules_of

# A record to check: (local id, fields) or (local id, fields, files).
Checked = tuple[str, tuple[Field, ...]] | tuple[str, tuple[Field, ...], tuple[File, ...]]


@dataclass
class Outcome:
    rule: Rule
    weight: str
    failing: int = 0
    example: str | None = None


@dataclass
class StoreReport:
    profile: str | None
    records: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    # A report is a context manager: leaving it closes (and so removes) this file.
    failures: IO[str] = field(
        default_factory=lambda: tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    )

    def __enter__(self) -> StoreReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.failures.close()

    @property
    def failed(self) -> bool:
        """Whether a record fails a mandatory rule of the profile: exit status 1."""
        return any(o.failing and o.weight == "mandatory" for o in self.outcomes)


def check_records(
    records: Iterable[
        tuple[str, tuple[Field, ...]] | tuple[str, tuple[Field, ...], tuple[File, ...]]
    ],
    settings: Settings,
    profile: str | None,
    progress: Callable[[int], object] = lambda n: None,
) -> StoreReport:
    """Run the profile's rules over (local id, fields) or (local id, fields, files);
    failures as JSON lines."""
    crosswalk = Crosswalk.from_settings(settings)
    linker = linker_of(settings)
    vocabularies = vocabularies_of(settings)
    report = StoreReport(profile)
    report.outcomes = [Outcome(rule, rule.weight(profile) or "") for rule in rules_of(profile)]
    write = report.failures.write
    try:
        for local_id, fields, *more in records:
            files = linker.linked(local_id, more[0]) if more and more[0] else ()
            view = RecordView.of(local_id, fields, crosswalk, vocabularies, files)
            for outcome in report.outcomes:
                detail = outcome.rule.test(view)
                if detail is not None:
                    outcome.failing += 1
                    if outcome.example is None:
                        outcome.example = local_id
                    line = json.dumps([local_id, outcome.rule.id, detail], ensure_ascii=False)
                    write(line + "\n")
            report.records += 1
            progress(1)
    except BaseException:  # the store failed midway (a lock given up on): no report
        report.failures.close()
        raise
    report.failures.seek(0)
    return report


def render_text(report: StoreReport, out: Callable[[str], None]) -> None:
    """The summary table (rule, weight, records failing, an example), then `ID: rule: detail`."""
    profile = report.profile or "all profiles"
    out(f"{report.records} records checked against {profile}")
    out("")
    width = max([len(o.rule.id) for o in report.outcomes] + [4])
    out(f"{'rule':<{width}}  {'level':<11}  {'failing':>7}  example")
    for o in report.outcomes:
        out(f"{o.rule.id:<{width}}  {o.weight:<11}  {o.failing:>7}  {o.example or '-'}")
    failing = [o for o in report.outcomes if o.failing]
    if failing:
        out("")
    for line in report.failures:
        local_id, rule, detail = json.loads(line)
        out(f"{local_id}: {rule}: {detail}")


def render_json(report: StoreReport, out: Callable[[str], None]) -> None:
    """One JSON document: the summary, then every failure; written piece by piece."""
    summary = {
        "profile": report.profile,
        "records": report.records,
        "failed": report.failed,
        "rules": [
            {
                "rule": o.rule.id,
                "level": o.weight,
                "asks": o.rule.asks,
                "failing": o.failing,
                "example": o.example,
            }
            for o in report.outcomes
        ],
    }
    head = json.dumps(summary, ensure_ascii=False, indent=1)
    out(head[: head.rindex("}")].rstrip() + ',\n "failures": [')
    previous: str | None = None
    for line in report.failures:
        local_id, rule, detail = json.loads(line)
        if previous is not None:
            out(previous + ",")
        previous = "  " + json.dumps(
            {"id": local_id, "rule": rule, "detail": detail}, ensure_ascii=False
        )
    if previous is not None:
        out(previous)
    out(" ]\n}")
