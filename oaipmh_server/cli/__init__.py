"""The `oaipmh-server` command: its group, and the commands each module of this package holds.

Commands parse their options, call the library and turn its errors into one clear message
and a non-zero exit: never a traceback.
"""

from __future__ import annotations

import click

from .checking import check, config
from .database import backup, copy_store, grants, migrate, stats
from .harvests import harvests
from .loading import delete, load, refresh_sets
from .serving import serve


@click.group()
@click.version_option(package_name="oaipmh-server")
def main() -> None:
    """An OAI-PMH 2.0 data provider for DSpace-style Dublin Core records.

    Configuration: OAIPMH_CONFIG (a TOML file like config/oaipmh.toml), and OAIPMH_*
    variables for some of its settings (OAIPMH_DATABASE_URL, OAIPMH_BASE_URL,
    OAIPMH_TOKEN_SECRET, OAIPMH_MODE, …: `config check` lists the ones in use); the
    environment wins over the file.
    """
    from ..config import unknown_variables

    for warning in unknown_variables():  # every command: a misspelt name changes nothing
        click.echo(f"warning: {warning}", err=True)


for _command in (load, refresh_sets, delete, stats, migrate, backup, check, config, serve):
    main.add_command(_command)
main.add_command(copy_store)
main.add_command(harvests)
main.add_command(grants)
