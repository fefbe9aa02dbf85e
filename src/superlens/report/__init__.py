"""Figures (matplotlib) and self-contained HTML reports, rendered from a run directory."""
