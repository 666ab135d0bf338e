"""Analytics: windows, efficiency, critical paths, statistical tests and trends."""
