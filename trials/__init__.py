"""trials: randomized trials of a jobcenter's own ways of working.

The package reads top-down as the life of a trial: protocol -> cases -> assign -> audit ->
outcomes -> analysis -> reports, with db/models underneath and the CLI on top.
"""

__version__ = "0.1.0"
