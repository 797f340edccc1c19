"""The commands that check: check (the records, or a live endpoint) and config check."""

from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

from ..errors import StoreUnavailable
from .opening import open_store, read_settings, vanishing_database


@click.command()
@click.argument("url", required=False)
@click.option(
    "--profile",
    type=click.Choice(["openaire", "base", "core", "driver"]),
    help="The aggregator whose rules apply (default: every rule of every profile).",
)
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="A report for people, or JSON for scripts.")  # fmt: skip
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: when it is a terminal).",
)
@click.option("--schema", "schemas", multiple=True, metavar="URL=FILE",
              help="URL: use FILE for the schema at URL (schemas not known offline).")  # fmt: skip
@click.option("--sample", type=click.IntRange(min=1), default=200, show_default=True,
              help="URL: records of each format validated.")  # fmt: skip
def check(
    url: str | None,
    profile: str | None,
    output: str,
    progress: bool | None,
    schemas: tuple[str, ...],
    sample: int,
) -> None:
    """Check the stored records against aggregators' rules, or URL, a live endpoint.

    Without URL: every record against the profile's rules, a summary table, then one line
    per failure (ID: rule: detail); exit status 1 if a record fails a mandatory rule.
    With URL: the endpoint against the protocol and its advertised schemas, one line per
    rule; exit status 1 if any rule fails.
    """
    _refuse_options_of_the_other_check(url, profile, progress, schemas)
    if url is not None:
        _check_endpoint(url, output, schemas, sample)
        return
    from tqdm import tqdm

    from ..check.store import check_records, render_json, render_text

    settings = read_settings()
    store = open_store(settings, existing=True)
    shown = sys.stderr.isatty() if progress is None else progress
    try:
        total = store.count_all() if shown else None
        with tqdm(total=total, unit=" records", disable=not shown, file=sys.stderr,
                  leave=False, mininterval=0.5) as bar:  # fmt: skip
            report = check_records(store.iter_records(), settings, profile, bar.update)
    except StoreUnavailable as e:
        raise click.ClickException(store.failure(e)) from None
    finally:
        store.close()
    render = render_json if output == "json" else render_text
    with report:
        render(report, click.echo)
    if report.failed:
        sys.exit(1)


def _refuse_options_of_the_other_check(
    url: str | None, profile: str | None, progress: bool | None, schemas: tuple[str, ...]
) -> None:
    """An option one check reads, given to the other, would be ignored without a word:
    `check --profile openaire URL` would seem to have checked OpenAIRE's rules."""
    if url is not None:
        progress_option = "--progress" if progress else "--no-progress"
        given = [("--profile", profile is not None), (progress_option, progress is not None)]
        why = "applies to the stored records' check, not to URL"
    else:
        sample = click.get_current_context().get_parameter_source("sample")
        given = [("--sample", sample is not ParameterSource.DEFAULT), ("--schema", bool(schemas))]
        why = "applies to the check of URL, and no URL is given"
    for option, present in given:
        if present:
            raise click.UsageError(f"{option} {why}")


def _check_endpoint(url: str, output: str, schemas: tuple[str, ...], sample: int) -> None:
    import json

    from ..check.endpoint import check_endpoint, http_fetch, render_text
    from ..check.resourcesync import check_resourcesync

    if not url.startswith(("http://", "https://")):
        raise click.ClickException(f"{url!r} is not an http(s) URL")
    given = {}
    for pair in schemas:
        schema_url, equals, path = pair.partition("=")
        if not equals or not path:
            raise click.ClickException(f"--schema {pair!r}: expected URL=FILE")
        if not os.path.isfile(path):  # libxml2 would skip the import, then fail every record
            raise click.ClickException(f"--schema {pair}: no such file")
        given[schema_url] = path
    fetch = http_fetch()
    results = check_endpoint(url, fetch, given, sample=sample) + check_resourcesync(url, fetch)
    if output == "json":
        click.echo(json.dumps([r.__dict__ for r in results], indent=1))
    else:
        render_text(results, click.echo)
    if any(r.status == "fail" for r in results):
        sys.exit(1)


@click.group()
def config() -> None:
    """The configuration: check it before serving it."""


@config.command("check")
def config_check() -> None:
    """Read the configuration as `serve` will (OAIPMH_CONFIG, the environment, secret files,
    systemd credentials); print each setting and where it came from, secrets masked; exit 1
    naming every mistake. Nothing is started, and the database is not opened."""
    from ..config import BUILT_IN, check_settings, describe_settings

    checked = check_settings()
    problems = list(checked.problems)
    if checked.settings is not None:
        url = checked.settings.database_url
        vanishing = vanishing_database(url, checked.sources.get("database_url", BUILT_IN))
        problems.extend([vanishing] if vanishing is not None else [])
    for line in describe_settings(checked):
        click.echo(line)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} mistake(s); serve would refuse to start", err=True)
        sys.exit(1)
    click.echo("configuration OK", err=True)
