"""Batch scoring: a table scored by the model version a deployment serves (``tidal
score``), with the server's runtime and input checks, logged like online traffic."""
