"""The web edge: the only package that imports Flask, Werkzeug and gunicorn.

`app` builds the Flask application; `views` answers the protocol's requests and `pages`
the HTML pages people read; `provider` holds what both blueprints share; `admission`
limits the harvests served at once; `serving` runs gunicorn for `serve`; `metrics`
counts requests for /metrics.
"""
