"""Names: semantic-convention constants and the dialect view of other instrumentations' spans."""
