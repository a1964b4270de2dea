"""The command line: serve, route, health, watch."""
