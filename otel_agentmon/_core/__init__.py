"""Core: the never-raise guard, process-wide state and the one place that touches SDK private API."""
