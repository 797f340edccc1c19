"""Record files into the store: inputs found and read, checked as drafts, written in one
transaction (load.py runs the course; each module says its part)."""
