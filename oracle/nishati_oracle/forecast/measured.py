"""What each home's meter reported, per 15-minute step: its export and import, from the
cumulative readings of its meters.

A meter signs its cumulative export and import at its timestamp; the energy between two of its
consecutive readings is spread over the steps the interval covers, in proportion to the time
spent in each (an integer split whose parts sum to the difference). A step is *reported* once
intervals cover all its 900 seconds. An interval longer than ``MAX_SPREAD_SECS`` (a meter that was
away) is not spread: its energy is real, but when within it the energy flowed is not known, so
the steps it spans stay unreported, neither learned from nor scored.

The meter sits at the grid connection: it sees what the home exports and imports, not what its
panels make. Over a step, export minus import is exactly production minus consumption (the net
through the connection), which is what the forecast's surplus is scored against.

The last ``history_steps`` steps are kept in arrays of (homes, steps): a ring of columns, each
holding one step for every home, so a round reads every home's window at once, and a batch of
readings is bucketed in a few array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nishati_oracle.forecast.weather import STEP_SECS

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Readings further apart than this are a meter that was away: its energy is not spread.
MAX_SPREAD_SECS = 3_600
FIRST_ROWS = 64


# The most steps an interval of at most MAX_SPREAD_SECS can touch.
MAX_STEPS_SPREAD = MAX_SPREAD_SECS // STEP_SECS + 1


def spread(starts: IntArray, ends: IntArray, wh: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Intervals (``starts``, ``ends``] of at most MAX_SPREAD_SECS, each split into the steps
    it covers: (intervals, MAX_STEPS_SPREAD) arrays of each part's step end, its share of the
    interval's ``wh`` and its seconds (0 past the interval's last step). The shares are the
    differences of the cumulative energy taken, rounded down, at each step boundary, so they
    are in proportion to the time and sum to ``wh``."""
    k = np.arange(MAX_STEPS_SPREAD, dtype=np.int64)[np.newaxis, :]
    start, end, energy = starts[:, np.newaxis], ends[:, np.newaxis], wh[:, np.newaxis]
    step_ends = (start // STEP_SECS + 1 + k) * STEP_SECS
    covered = np.clip(np.minimum(end, step_ends) - start, 0, None)
    taken = energy * covered // (end - start)
    first = np.zeros_like(start)
    shares = np.diff(taken, axis=1, prepend=first)
    secs = np.diff(covered, axis=1, prepend=first)
    return step_ends, shares, secs


@dataclass(frozen=True)
class Window:
    """Every home's steps ending at ``ends``: export and import (Wh) and whether reported, each
    (homes, steps), rows in :attr:`MeasuredSteps.rows` order."""

    ends: IntArray
    exported: IntArray
    imported: IntArray
    reported: BoolArray


class MeasuredSteps:
    """Each home's reported steps over the last ``history_steps``, fed reading by reading."""

    def __init__(self, history_steps: int) -> None:
        self.history_steps = history_steps
        self.rows: dict[str, int] = {}
        self._meters: dict[str, int] = {}
        # Each meter's last reading: timestamp, cumulative export and import.
        self._last = np.zeros((FIRST_ROWS, 3), dtype=np.int64)
        self._has_last = np.zeros(FIRST_ROWS, dtype=bool)
        self._column_end = np.zeros(history_steps, dtype=np.int64)
        self._exported = np.zeros((FIRST_ROWS, history_steps), dtype=np.int32)
        self._imported = np.zeros((FIRST_ROWS, history_steps), dtype=np.int32)
        self._covered = np.zeros((FIRST_ROWS, history_steps), dtype=np.int16)

    def row(self, household: str) -> int:
        """The household's row, added (with nothing reported) if new."""
        row = self.rows.get(household)
        if row is None:
            row = self.rows[household] = len(self.rows)
            if row == len(self._exported):
                grow = ((0, len(self._exported)), (0, 0))
                self._exported = np.pad(self._exported, grow)
                self._imported = np.pad(self._imported, grow)
                self._covered = np.pad(self._covered, grow)
        return row

    def readings(
        self,
        meters: Sequence[str],
        households: Sequence[str],
        timestamps: IntArray,
        exported: IntArray,
        imported: IntArray,
        now: float,
    ) -> None:
        """Meters' next cumulative readings, in the order stored: the energy since each
        meter's previous reading is spread over the steps between them (a meter's first
        reading is only its baseline)."""
        meter = np.array([self._meter(m) for m in meters], dtype=np.int64)
        row = np.array([self.row(h) for h in households], dtype=np.int64)
        order = np.argsort(meter, kind="stable")
        meter, row = meter[order], row[order]
        now_values = np.stack([timestamps[order], exported[order], imported[order]], axis=1)
        first = np.r_[True, meter[1:] != meter[:-1]]
        last = np.r_[meter[1:] != meter[:-1], True]
        before = np.roll(now_values, 1, axis=0)
        before[first] = self._last[meter[first]]
        has_before = ~first | self._has_last[meter]
        self._last[meter[last]] = now_values[last]
        self._has_last[meter[last]] = True
        gap = now_values[:, 0] - before[:, 0]
        spreadable = has_before & (gap > 0) & (gap <= MAX_SPREAD_SECS)
        start, end = before[spreadable, 0], now_values[spreadable, 0]
        rows = np.repeat(row[spreadable], MAX_STEPS_SPREAD)
        step_ends, export_wh, secs = spread(
            start, end, np.maximum(now_values[spreadable, 1] - before[spreadable, 1], 0)
        )
        _, import_wh, _ = spread(
            start, end, np.maximum(now_values[spreadable, 2] - before[spreadable, 2], 0)
        )
        self._add(rows, step_ends.ravel(), export_wh.ravel(), import_wh.ravel(), secs.ravel(), now)

    def _meter(self, meter: str) -> int:
        index = self._meters.get(meter)
        if index is None:
            index = self._meters[meter] = len(self._meters)
            if index == len(self._last):
                self._last = np.pad(self._last, ((0, len(self._last)), (0, 0)))
                self._has_last = np.pad(self._has_last, (0, len(self._has_last)))
        return index

    def _add(
        self,
        rows: IntArray,
        ends: IntArray,
        exported: IntArray,
        imported: IntArray,
        secs: IntArray,
        now: float,
    ) -> None:
        # Older than the window, or ahead of the oracle's clock: not kept.
        kept = (secs > 0) & (ends > now - self.history_steps * STEP_SECS)
        kept &= ends <= now + STEP_SECS
        rows, ends, exported, imported, secs = (
            a[kept] for a in (rows, ends, exported, imported, secs)
        )
        columns = ends // STEP_SECS % self.history_steps
        for end in np.unique(ends).tolist():
            column = end // STEP_SECS % self.history_steps
            held = int(self._column_end[column])
            if held > end:
                stale = ends == end
                rows, ends, exported, imported, secs, columns = (
                    a[~stale] for a in (rows, ends, exported, imported, secs, columns)
                )
            elif held < end:
                self._column_end[column] = end
                self._exported[:, column] = 0
                self._imported[:, column] = 0
                self._covered[:, column] = 0
        np.add.at(self._exported, (rows, columns), exported.astype(np.int32))
        np.add.at(self._imported, (rows, columns), imported.astype(np.int32))
        np.add.at(self._covered, (rows, columns), secs.astype(np.int16))

    def window(self, first_end: int, steps: int, rows: slice = slice(None)) -> Window:
        """Every home's (or ``rows``') ``steps`` steps from the one ending at ``first_end``."""
        ends = first_end + STEP_SECS * np.arange(steps, dtype=np.int64)
        columns = ends // STEP_SECS % self.history_steps
        held = self._column_end[columns] == ends
        start, stop, _ = rows.indices(len(self.rows))
        homes = slice(start, stop)
        return Window(
            ends=ends,
            exported=self._exported[homes][:, columns].astype(np.int64),
            imported=self._imported[homes][:, columns].astype(np.int64),
            reported=(self._covered[homes][:, columns] >= STEP_SECS) & held[np.newaxis, :],
        )

    def step(self, household: str, end: int) -> tuple[int, int] | None:
        """A home's export and import in the step ending at ``end``, if reported."""
        row = self.rows.get(household)
        column = end // STEP_SECS % self.history_steps
        if row is None or self._column_end[column] != end:
            return None
        if self._covered[row, column] < STEP_SECS:
            return None
        return int(self._exported[row, column]), int(self._imported[row, column])
