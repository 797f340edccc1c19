"""The protocol core runs without the web and without the database."""

import subprocess
import sys


def test_protocol_imports_neither_flask_nor_sqlalchemy() -> None:
    code = (
        "import sys, oaipmh_server.protocol, oaipmh_server.verbs, oaipmh_server.tokens;"
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'werkzeug') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


def test_package_import_is_light() -> None:
    code = "import sys, oaipmh_server; print('lxml' in sys.modules, 'flask' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False False"
