"""The built-in configuration, oaipmh.toml: every key, its default and what it does.

config.py reads it first, so the documented file and the code can never disagree. The
top-level config/oaipmh.toml is the copy operators read and copy; tests/test_config.py
checks the two are the same bytes.
"""
