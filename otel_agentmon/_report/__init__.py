"""Reports: the model and its HTML, Markdown and Prometheus sources."""
