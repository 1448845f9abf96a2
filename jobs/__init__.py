"""Runnable jobs, one module per ``harvest`` verb (``harvest ingest`` runs ``jobs/ingest.py``).

Each module holds a docstring saying what it reads and writes, a frozen config, ``plan``,
``run`` and ``main(argv) -> int``. Jobs hold no numerics: those live in ``cluster``.
"""
