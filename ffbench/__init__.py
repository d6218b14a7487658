"""ffbench: reproduce and extend the MNIST table of the Notes on the Forward-Forward Algorithm.

From Python: `ffbench.run`, `ffbench.table`, `ffbench.load_runs`, `ffbench.experiments`,
`ffbench.define` (ffbench/api.py); from the shell: `ffbench --help` (ffbench/cli.py).
"""

__version__ = "0.1.0"

from ffbench.api import (  # noqa: E402  (after __version__, which the run records read)
    BadRequest,
    RunResult,
    define,
    experiments,
    load_runs,
    run,
    table,
)
from ffbench.experiment import Experiment, register  # noqa: E402

__all__ = ["BadRequest", "Experiment", "RunResult", "define", "experiments", "load_runs",
           "register", "run", "table"]  # fmt: skip
