"""Metric sources: where readings come from."""
