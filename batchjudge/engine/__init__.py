"""The engine: one run as steps (reader, judge, sink) over shared limits and a run directory.

Import the submodules directly; this package re-exports nothing, so that importing one step
does not load the others (or pyarrow, or an SDK).
"""
