"""Alerts: rule engine, rule files and Prometheus export, notifiers."""
