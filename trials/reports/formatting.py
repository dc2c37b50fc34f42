"""Numbers as a Danish or an English reader expects them, and small-count suppression.

Danish statistical practice does not publish counts below 5 for individuals; with
`public=True` every count goes through `count()`, which shows such cells as "<5".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SUPPRESS_BELOW = 5


@dataclass(frozen=True)
class NumberFormat:
    """Formats numbers for one language; `public` switches small-count suppression on."""

    lang: str = "en"
    public: bool = False

    @property
    def decimal(self) -> str:
        return "," if self.lang == "da" else "."

    @property
    def thousands(self) -> str:
        return "." if self.lang == "da" else ","

    def number(self, value: float | int | None, digits: int = 1) -> str:
        """A number with `digits` decimals and the language's separators; "–" for missing."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        text = f"{value:,.{digits}f}"
        return text.replace(",", "\0").replace(".", self.decimal).replace("\0", self.thousands)

    def integer(self, value: float | int | None) -> str:
        return self.number(value, 0)

    def count(self, value: float | int | None) -> str:
        """A count of persons; suppressed below 5 in public reports (zero too: it is a small cell)."""
        if value is None:
            return "–"
        if self.public and value < SUPPRESS_BELOW:
            return f"<{SUPPRESS_BELOW}"
        return self.integer(value)

    def percent(self, share: float | None, digits: int = 1) -> str:
        """A share (0–1) as a percentage."""
        if share is None:
            return "–"
        return f"{self.number(100 * share, digits)} %"

    def points(self, difference: float | None, digits: int = 1) -> str:
        """A difference of shares (0–1) in percentage points, with its sign."""
        if difference is None:
            return "–"
        sign = "+" if difference > 0 else ("−" if difference < 0 else "±")
        return f"{sign}{self.number(abs(100 * difference), digits)}"

    def interval(self, ci: list[float | None] | tuple[float | None, float | None] | None, digits: int = 2,
                 scale: float = 1.0) -> str:
        if not ci or ci[0] is None or ci[1] is None:
            return "–"
        separator = "; " if self.lang == "da" else ", "
        return f"{self.number(ci[0] * scale, digits)}{separator}{self.number(ci[1] * scale, digits)}"

    def p_value(self, p: float | None) -> str:
        if p is None or not math.isfinite(p):
            return "–"
        if p < 0.001:
            return f"<{self.number(0.001, 3)}"
        return self.number(p, 3)

    def dkk(self, value: float | None) -> str:
        return "–" if value is None else f"{self.number(value, 0)} kr."
