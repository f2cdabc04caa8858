"""Unique names for what a launch creates on a platform (jobs, clusters, containers, endpoints):
`STEM-YYYYMMDD-HHMMSS-xxxx`, the time in UTC and four random hex digits, so two launches in the same second
still differ.

Each platform declares its rule once (a NameRule: the most characters, the characters, whether a name must
start with a letter) beside the platform's contract; the same rule makes generated names and checks names
the user gives. As in dstack's shared helper (core/backends/base/compute.py, generate_unique_name), the stem
is cut to fit and the unique suffix never; a cut never leaves a trailing "-"."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

LONG_STAMP = "%Y%m%d-%H%M%S"
# where a limit of 40 leaves too little stem after the long stamp (Apolo, SkyPilot): month to second
SHORT_STAMP = "%m%d%H%M%S"
PLACEHOLDERS = {LONG_STAMP: "YYYYMMDD-HHMMSS", SHORT_STAMP: "MMDDHHMMSS"}
RANDOM_HEX = 4


@dataclass(frozen=True)
class NameRule:
    """What one platform accepts as a name.

    chars: a regex character class body (without the brackets) of the characters allowed between dashes;
    runs of anything else in a stem become one "-". lower: letters are lower-cased first. letter_first: the
    name must start with a letter; a stem that does not gets `lead` put before it."""

    max_len: int
    chars: str = "a-zA-Z0-9"
    lower: bool = False
    letter_first: bool = False
    lead: str = "pb-"
    stamp: str = LONG_STAMP
    repeat_dash: bool = True       # "a--b" allowed (SageMaker's (-*[a-zA-Z0-9])); Apolo takes one at a time
    min_len: int = 1
    title: str = "valid"           # a refusal reads "job_name 'x' is not <title> (<hint>)"
    hint: str = ""

    @property
    def pattern(self) -> re.Pattern:
        """A whole valid name: allowed characters joined by dashes, never at either end."""
        first = "a-z" if self.letter_first and self.lower else "a-zA-Z" if self.letter_first else self.chars
        dash = "-*" if self.repeat_dash else "-?"
        return re.compile(rf"^[{first}]({dash}[{self.chars}])*$")

    def fits(self, name: str) -> bool:
        return self.min_len <= len(name) <= self.max_len and bool(self.pattern.match(name))

    def refusal(self, setting: str, name: Optional[str]) -> Optional[str]:
        """Why `name`, given as `setting`, does not fit this rule (one line), or None (None fits: not given)."""
        if name is None or self.fits(name):
            return None
        return f"{setting} {name!r} is not {self.title}" + (f" ({self.hint})" if self.hint else "")

    def stem(self, text: str) -> str:
        """`text` made of allowed characters only, starting as the rule wants; may be empty."""
        text = text.lower() if self.lower else text
        stem = re.sub(rf"[^{self.chars}]+", "-", text).strip("-")
        if stem and self.letter_first and not stem[0].isalpha():
            stem = f"{self.lead.rstrip('-')}-{stem}"
        return stem

    def unique(self, stem: str, now: Optional[datetime] = None) -> str:
        """STEM-STAMP-xxxx in at most max_len characters: the stem is cut, never the stamp and random
        suffix; without a stem (or no room for one) the suffix alone, led by `lead` where a letter must
        come first."""
        suffix = f"{(now or datetime.now(timezone.utc)).strftime(self.stamp)}-{secrets.token_hex(RANDOM_HEX // 2)}"
        room = self.max_len - len(suffix) - 1
        cut = self.stem(stem)[:max(0, room)].rstrip("-")
        if cut:
            return f"{cut}-{suffix}"
        return f"{self.lead.rstrip('-')}-{suffix}" if self.letter_first else suffix

    def placeholder(self, stem: str) -> str:
        """What a plan shows for a name made at launch: STEM-YYYYMMDD-HHMMSS-XXXX."""
        return f"{self.stem(stem) or self.lead.rstrip('-')}-{PLACEHOLDERS.get(self.stamp, 'STAMP')}-XXXX"


# A name with no platform limit of its own: as many characters as SageMaker and Vertex AI take (63),
# letters, digits and dashes; a readable default for a new platform.
DEFAULT = NameRule(63)


def unique_name(stem: str, rule: NameRule = DEFAULT) -> str:
    """A fresh `STEM-YYYYMMDD-HHMMSS-xxxx` under `rule` (see NameRule.unique)."""
    return rule.unique(stem)
