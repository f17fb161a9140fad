"""Monitoring: `labelgate report` over the decision log (app/core/decisionlog.py; graph/recorder.py writes it)."""
