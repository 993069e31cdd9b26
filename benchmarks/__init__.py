"""The bench: speed and memory of the knowledge core against its targets (`python -m benchmarks`).

A development tool beside the packages, not shipped in the wheel.
"""
