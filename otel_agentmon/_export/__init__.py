"""Export: the bounded, accounted batch worker, span processor and exporters."""
