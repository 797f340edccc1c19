#!/bin/sh
# The container's start (deploy/Containerfile runs this and nothing else), also usable on
# its own: wait for the database, migrate its schema, then serve in the foreground.
#
#   OAIPMH_*               the server's settings, as everywhere (docs/configuration.md);
#                          OAIPMH_HOST defaults to 0.0.0.0 here (a container's address),
#                          unless OAIPMH_SOCKET is set.
#   DATABASE_WAIT_SECONDS  how long to wait for the database to accept connections
#                          (default 60); then this stops, saying why it could not connect.
#
# Arguments are passed on to `oaipmh-server serve` (e.g. --workers 4). The suite runs this
# file as it is (tests/test_deploy.py), against a PostgreSQL started after it.
set -eu

if [ -z "${OAIPMH_SOCKET:-}" ]; then
    export OAIPMH_HOST="${OAIPMH_HOST:-0.0.0.0}"
fi

# 1. Wait until the database accepts connections (PostgreSQL starting beside us in
# compose, or restarting). A mistake in the settings stops at once; a database still
# starting is tried again each second, saying once what it answered.
python3 - <<'PYTHON'
import os
import sys
import time

from oaipmh_server.config import ConfigError, load_settings
from oaipmh_server.store.failures import cannot_open

try:
    settings = load_settings()
except ConfigError as e:
    sys.exit(f"entrypoint: {e}")
url, password = settings.database_url, settings.database_password
if url.startswith("sqlite"):
    sys.exit(0)  # a file: nothing to wait for

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

try:
    raw = os.environ.get("DATABASE_WAIT_SECONDS", "60")
    deadline = time.monotonic() + int(raw)
except ValueError:
    sys.exit(f"entrypoint: DATABASE_WAIT_SECONDS={raw!r} is not a whole number of seconds")
try:
    target = make_url(url) if password is None else make_url(url).set(password=password)
    engine = create_engine(target, poolclass=NullPool)
except Exception as e:  # an unknown kind of database, a driver not installed
    sys.exit(f"entrypoint: {cannot_open(url, e, password)}")
said = False
while True:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        break
    except OperationalError as e:
        reason = cannot_open(url, e, password)
        if time.monotonic() >= deadline:
            sys.exit(f"entrypoint: gave up waiting for the database: {reason}")
        if not said:
            print(f"entrypoint: waiting for the database: {reason}", file=sys.stderr, flush=True)
            said = True
        time.sleep(1)
if said:
    print("entrypoint: the database answers", file=sys.stderr, flush=True)
PYTHON

# 2. Migrate the schema explicitly, so an upgrade's migration is logged here, before any
# worker starts. (This kit ships with the code it starts, which has `migrate`: no interpreter
# is started just to ask.)
oaipmh-server migrate

# 3. Serve in the foreground, as the container's main process: signals reach gunicorn.
exec oaipmh-server serve "$@"
