"""The bootstrap a process container of the simulated cluster starts with (``sitecustomize``).

This folder goes first on the child's ``PYTHONPATH``; see :mod:`k3dtui.sim.podboot.sitecustomize`.
"""
