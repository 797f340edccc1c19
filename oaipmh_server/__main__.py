"""`python -m oaipmh_server` is the `oaipmh-server` command."""

from .cli import main

main()
