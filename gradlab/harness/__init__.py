"""Harness: tooling that notebooks and tests share, not part of the library a training program uses.

- :mod:`~gradlab.harness.distributed`: logical CPU devices, strategies and a multi-worker
  cluster of processes on this machine (notebook 08 and the distributed tests).
"""
