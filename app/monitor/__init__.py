"""Monitoring: the decision log (one row per graph run) and `labelgate report` over it."""
