"""Event times and their risk sets, for rows sorted by (stratum, time).

The log-rank test (`logrank.py`) and the numpy Cox fit (`efron.py`) both sum over the distinct
event times of each stratum: the risk set of an event time is the block of sorted rows from its
first row to the end of its stratum, and its tied events are contiguous among the event rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class RiskSets:
    order: NDArray[np.intp]  # rows sorted by stratum, then time
    stratum_starts: NDArray[np.intp]  # sorted position where each stratum begins
    time_starts: NDArray[np.intp]  # per event time: the sorted position of its first row
    ends: NDArray[np.intp]  # per event time: the first sorted position after its stratum
    deaths: NDArray[np.int64]  # per event time: the number of tied events
    event_rows: NDArray[np.intp]  # sorted positions of the rows with an event
    first_event: NDArray[np.intp]  # per event time: where its events begin in event_rows

    @property
    def n_risk(self) -> NDArray[np.float64]:
        return (self.ends - self.time_starts).astype(float)


def risk_sets(time: NDArray[np.float64], event: NDArray[np.int_], strata: NDArray[np.int_] | None,
              order: NDArray[np.intp] | None = None) -> RiskSets:
    """The event times of every stratum. `order` (rows sorted by stratum, then time) may be given
    to share one sort between horizons: sorting by uncensored time also sorts the times censored
    at any horizon; it is checked."""
    time = np.asarray(time, dtype=float)
    strata = np.zeros(len(time), dtype=int) if strata is None else np.asarray(strata)
    if order is None:
        order = np.lexsort((time, strata))
    t, e, s = time[order], np.asarray(event)[order] > 0, strata[order]
    n = len(t)
    if n > 1 and not np.all((s[1:] > s[:-1]) | ((s[1:] == s[:-1]) & (t[1:] >= t[:-1]))):
        raise ValueError("the given order does not sort the rows by stratum and time")
    new_time = np.ones(n, dtype=bool)
    new_time[1:] = (t[1:] != t[:-1]) | (s[1:] != s[:-1])
    starts = np.flatnonzero(new_time)
    afters = np.append(starts[1:], n)
    new_stratum = np.ones(n, dtype=bool)
    new_stratum[1:] = s[1:] != s[:-1]
    stratum_starts = np.flatnonzero(new_stratum)
    cum_e = np.concatenate([[0], np.cumsum(e)])
    deaths = cum_e[afters] - cum_e[starts]
    keep = deaths > 0
    starts, deaths = starts[keep], deaths[keep]
    ends = np.append(stratum_starts[1:], n)[(np.cumsum(new_stratum) - 1)[starts]]
    event_rows = np.flatnonzero(e)
    return RiskSets(order, stratum_starts, starts, ends, deaths.astype(np.int64), event_rows,
                    np.searchsorted(event_rows, starts))
