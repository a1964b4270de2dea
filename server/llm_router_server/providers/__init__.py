"""Model providers: the ``Provider`` seam and its implementations."""
