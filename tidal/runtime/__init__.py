"""Loading registered models for prediction (hash-verified). Grows with serving."""
