"""Real server logs: PostgreSQL, the MySQL slow query log and OpenSSH sshd.

One module per format; each reads the file as numbered lines (:mod:`analysis.ingest.lines`),
parses it inside DuckDB (regexes and window functions over whole chunks, never a Python
loop per line), and hands its records to :func:`analysis.ingest.validate.store`, which validates,
fingerprints and stores them like every other input. Lines that are not records are
counted in the file's notes; PostgreSQL's go to the ``server_events`` table. Each module
has a ``read`` (the registry's entry point) and a ``sniff`` (its content signature); the
table of formats is :data:`analysis.ingest.registry.READERS`.
"""
