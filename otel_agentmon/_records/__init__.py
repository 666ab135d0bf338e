"""Records: the span record model and recordings."""
