"""The bottom layer: the types every part of batchjudge speaks, and pure maths.

Nothing here imports another part of the package (only :mod:`batchjudge.errors`), so every
layer above may use it without knotting the import graph:

- :mod:`.types`: a chat message, a judge request and reply, the provider and tracer
  protocols, the retry decision a provider gives;
- :mod:`.results`: a row's result (:class:`~.results.RowResult`), its statuses and the
  Parquet schema of ``results/*.parquet``;
- :mod:`.metrics`: classification metrics in plain numpy;
- :mod:`.scrub`: the one scrubber everything leaving the process goes through.

Import the submodules directly; this package re-exports nothing, so importing one of them
costs only what it needs.
"""
