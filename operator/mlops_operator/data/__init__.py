"""Dataset content: reading sources, the canonical CSV and its version, schema checks, the drift profile."""
