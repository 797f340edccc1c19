"""3.6: every error code of the specification has its class, and nothing else does."""

from oaipmh_server.errors import ERRORS, BadArgument, BadVerb, OAIError

SPEC_CODES = {
    "badArgument", "badResumptionToken", "badVerb", "cannotDisseminateFormat",
    "idDoesNotExist", "noRecordsMatch", "noMetadataFormats", "noSetHierarchy",
}  # fmt: skip


def test_registry_has_the_eight_codes_of_the_specification() -> None:
    assert set(ERRORS) == SPEC_CODES
    assert all(issubclass(cls, OAIError) and ERRORS[cls.code] is cls for cls in ERRORS.values())


def test_only_bad_verb_and_bad_argument_hide_the_arguments() -> None:
    hiding = {code for code, cls in ERRORS.items() if not cls.echo_arguments}
    assert hiding == {BadVerb.code, BadArgument.code}
