"""The benchmark scripts, one module per question, run from the repository root as ``python -m benchmarks.<name>``
(e.g. ``python -m benchmarks.claims --quick``); ``_common`` holds what they share. Not part of the library."""
