"""The built-in configuration, installed as package data of oaipmh_server.defaults."""
