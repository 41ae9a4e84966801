"""Foundations shared by every other package: errors, clock, ids, hashing, config.

Nothing here imports anything else from tidal, so any package may import it.
"""
