"""pytest fixtures for the wire-level fakes (filled in by the provider work)."""
