"""`python -m tunespec ...`: the same command line as `tunespec ...` (useful where only a
Python interpreter is on PATH, and under `torchrun -m tunespec run-job ...`)."""

from tunespec.cli.main import run

run()
