"""Metrics: instruments and Views, derivation of metrics from spans, sliding windows."""
