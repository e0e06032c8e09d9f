"""Shared services of both commands: errors, atomic files and checksummed artifacts, locks,
device and threads, progress, timing, the process group, chunked batches.

Imports nothing of layerwise outside this folder; every other room may import it.
"""
__version__ = "0.1.0"
