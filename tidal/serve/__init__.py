"""The model server: Open Inference Protocol v2 and JSON records over HTTP, adaptive
batching, routing between model versions (stable, canary, shadow), the durable
prediction log and Prometheus metrics. Imports ``runtime``, ``store``, ``artifacts`` and
``core`` only (DESIGN.md), so a replica stays small and starts fast."""
