"""A wave's button acts only on what its card showed (docs/security.md,
"Buttons act on what they showed").

A change's buttons name the request or the version they were drawn for
(bot/service/binding.py). A wave's buttons named only the wave (`BAT-0001`),
so a card drawn while the wave's checkpoints waited for approval approved,
days later, a Roll back all that nobody had asked for when it was drawn;
and a Roll back all whose confirm listed WEB01 and WEB02 also rolled back
APP01, taken from its change window since. Now each of a wave's buttons
names the wave, its verb and a key of what it was drawn for:
`BAT-0001:rollback:3f9a0c1d22be`. The click recomputes the key from the
wave as it is and acts only when it is the same; otherwise nothing is done
and the clicker gets the wave's card as it is now.

What a key covers, per verb (`shown_items`):

- rollback: the members that are active (what Roll back all restores);
- merge: the members that still hold a checkpoint, each with its state
  (active or rolled back): a Keep & merge all drawn while the VMs were
  active ("each VM keeps its changes") must not merge them once they were
  rolled back, though the same members hold a checkpoint;
- approve: every approval request of the wave's members that is pending
  (whoever may approve which: one approver's card and another's show the
  same wave);
- withdraw: what waits and may be withdrawn, with who asked for it.

A key is the first 12 hex digits of a SHA-256 over the verb and the sorted
items: short enough for any wave on a button (Slack's value limit is 2,000
characters), and no card a person can draw collides by chance.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

# The card's verbs whose buttons are bound (the wave's "Show" is not: it
# shows, and acts on nothing).
VERBS = ("rollback", "merge", "approve", "withdraw")
# Member states each verb's key covers (as bot.service.batch_actions.ELIGIBLE).
ROLLBACK_STATES = frozenset({"active"})
MERGE_STATES = frozenset({"active", "rolled_back"})

_KEY_DIGITS = 12
_VALUE = re.compile(r"^(BAT-\d{1,9}):(rollback|merge|approve|withdraw):([0-9a-f]{12})$")


def merge_item(change_ref: str, state: str) -> str:
    """What a merge key covers of one member: which, and in what state."""
    return f"{change_ref}:{state}"


def key_of(verb: str, items: Iterable[object]) -> str:
    """The key of a `verb` button drawn for `items` (in any order)."""
    shown = sorted(str(i) for i in items)
    digest = hashlib.sha256(json.dumps([verb, shown]).encode()).hexdigest()
    return digest[:_KEY_DIGITS]


def value_of(ref: str, verb: str, items: Iterable[object]) -> str:
    """A wave button's value: `BAT-0001:rollback:<key>`."""
    return f"{ref}:{verb}:{key_of(verb, items)}"


@dataclass(frozen=True)
class WaveClick:
    """What a wave button's value names. `key` None: a value drawn before
    buttons were bound (a bare `BAT-0001`), which acts on nothing."""

    ref: str
    verb: str | None
    key: str | None

    @classmethod
    def parse(cls, value: str) -> WaveClick:
        text = value.strip()
        found = _VALUE.match(text)
        if found is None:
            return cls(text, None, None)
        return cls(found.group(1), found.group(2), found.group(3))
