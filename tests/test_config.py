"""Settings: defaults → OAIPMH_CONFIG file → environment → overrides, errors naming the key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_config_oaipmh_toml() -> None:
    settings = load_settings(environ={})
    assert settings.repository_identifier == "repository.example.org"
    assert settings.page_size == 100
    assert dict(settings.oai_dc_map)["dc.contributor.author"] == "creator"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[repository]\nname = "Hub"\nbase_url = "https://file.example.org/oai"\n'
        '[harvest]\npage_size = 50\n[oai_dc.map]\n"dc.date.accessioned" = "date"\n'
    )
    environ = {"OAIPMH_CONFIG": str(config), "OAIPMH_BASE_URL": "https://env.example.org/oai"}
    settings = load_settings({"page_size": 3}, environ=environ)
    assert settings.repository_name == "Hub"
    assert settings.base_url == "https://env.example.org/oai"  # environment wins over the file
    assert settings.page_size == 3  # overrides win over everything
    mapping = dict(settings.oai_dc_map)
    assert mapping["dc.date.accessioned"] == "date"  # the file's map adds to the default one
    assert mapping["dc.title.*"] == "title"


def test_page_size_from_environment() -> None:
    assert load_settings(environ={"OAIPMH_PAGE_SIZE": "1"}).page_size == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[repository]\nnmae = 'x'\n", "unknown key repository.nmae"),
        ("[harvest]\npage_size = 0\n", "harvest.page_size"),
        ("[harvest]\npage_size = 'ten'\n", "harvest.page_size"),
        ("[repository]\nidentifier = 'not a domain'\n", "repository.identifier"),
        ("[repository]\nadmin_emails = ['nobody']\n", "repository.admin_emails"),
        ("[repository]\nbase_url = 'ftp://x/oai'\n", "repository.base_url"),
        ("[datestamps]\nmissing_accessioned = 'guess'\n", "datestamps.missing_accessioned"),
        ("[oai_dc.map]\n'dc.title' = 'headline'\n", "oai_dc.map"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, body: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    assert message in str(caught.value)
    assert str(config) in str(caught.value)


def test_missing_config_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"OAIPMH_CONFIG.*nowhere\.toml"):
        load_settings(environ={"OAIPMH_CONFIG": "/nowhere.toml"})


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="OAIPMH_BASE_URL"):
        load_settings(environ={"OAIPMH_BASE_URL": "not a url"})


def test_the_operators_copy_is_the_built_in_configuration() -> None:
    """config/oaipmh.toml, which operators read and copy, is byte for byte the file the
    server takes its defaults from (oaipmh_server/defaults/oaipmh.toml): edit the one in
    the package and copy it over."""
    built_in = resources.files("oaipmh_server.defaults").joinpath("oaipmh.toml").read_bytes()
    assert (ROOT / "config" / "oaipmh.toml").read_bytes() == built_in
