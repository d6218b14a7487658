"""The package version (pyproject.toml reads it; run records write it to env.json)."""

__version__ = "0.1.0"
