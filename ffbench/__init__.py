"""ffbench: reproduce and extend the MNIST table of the Notes on the Forward-Forward Algorithm.

From Python: `ffbench.run`, `ffbench.table`, `ffbench.load_runs`, `ffbench.experiments`,
`ffbench.define`, `ffbench.register` (a row), `ffbench.register_method` (a method: a subclass of
`ffbench.Method`), all in ffbench/api.py; from the shell: `ffbench --help` (ffbench/cli).
"""

from ffbench._version import __version__
from ffbench.api import (
    BadRequest,
    Experiment,
    Method,
    RunOptions,
    RunResult,
    define,
    experiments,
    load_runs,
    register,
    run,
    table,
)
from ffbench.methods import register as register_method

__all__ = ["__version__", "BadRequest", "Experiment", "Method", "RunOptions", "RunResult", "define",
           "experiments", "load_runs", "register", "register_method", "run", "table"]  # fmt: skip
