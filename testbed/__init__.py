"""The real servers devscale's integration tests and sandbox run on loopback."""
