"""Setup: settings, providers, the Monitor and the process lifecycle."""
