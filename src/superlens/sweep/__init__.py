"""Sweeps: spec -> grid -> groups (points sharing tensor shapes train together on the instance axis)
-> a backend (local process pool or Ray) -> one table, phase diagrams and a report."""
