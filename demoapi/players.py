"""The deterministic pool of players that demo replays are fought between."""

import random
import string
from dataclasses import dataclass

from demoapi.catalog import NAME_SYLLABLES, SPECIAL_NAMES, TAG_WORDS, TITLES

_USERID_CHARS = frozenset(string.ascii_lowercase + string.digits)


def to_userid(name: str) -> str:
    """Return Showdown's userid for a display name: its lowercased ASCII letters and digits."""
    return "".join(char for char in name.lower() if char in _USERID_CHARS)


@dataclass(frozen=True, slots=True)
class PlayerPool:
    """Display names and their unique userids, index-aligned."""

    names: tuple[str, ...]
    userids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


def _syllable_word(rng: random.Random) -> str:
    return "".join(rng.choice(NAME_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _random_name(rng: random.Random) -> str:
    """Draw one name in one of the styles seen on a ladder."""
    style = rng.randrange(4)
    if style == 0:
        return f"{_syllable_word(rng)} {_syllable_word(rng)}"
    if style == 1:
        return f"{_syllable_word(rng)}{rng.randint(1, 999)}"
    if style == 2:
        return f"{rng.choice(TITLES)} {_syllable_word(rng)}"
    return f"{rng.choice(TAG_WORDS)}{rng.choice(TAG_WORDS)}{rng.choice(('', '_', 'X', 'TV'))}"


def build_player_pool(count: int, seed: int) -> PlayerPool:
    """Build `count` players: the special names first, then drawn names with unique userids."""
    rng = random.Random(seed)
    names: list[str] = []
    userids: list[str] = []
    seen: set[str] = set()
    candidates = iter(SPECIAL_NAMES)
    while len(names) < count:
        name = next(candidates, None) or _random_name(rng)
        userid = to_userid(name)
        if userid and userid not in seen:
            seen.add(userid)
            names.append(name)
            userids.append(userid)
    return PlayerPool(tuple(names), tuple(userids))
