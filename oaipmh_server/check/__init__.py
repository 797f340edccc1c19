"""`oaipmh-server check`: what each aggregator will reject, known before it harvests.

`rules.py` holds the store profile rules (OpenAIRE, BASE, CORE, DRIVER) as a table;
`store.py` runs them over every stored record; `endpoint.py` checks a live endpoint, this
one or any other, against the protocol and the schemas it advertises (`catalogue.py`).
"""
