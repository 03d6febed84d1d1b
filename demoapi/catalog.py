"""Battle formats and hand-picked player names the demo dataset draws from."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BattleFormat:
    """One Showdown format: its id, display name and how often it is played."""

    id: str
    name: str
    weight: float
    players: int = 2
    rated: bool = True


# Weights follow the rough popularity of the real ladders: random battles and OU dominate.
FORMATS: tuple[BattleFormat, ...] = (
    BattleFormat("gen9randombattle", "[Gen 9] Random Battle", 20.0),
    BattleFormat("gen9ou", "[Gen 9] OU", 14.0),
    BattleFormat("gen9ubers", "[Gen 9] Ubers", 3.0),
    BattleFormat("gen9uu", "[Gen 9] UU", 3.0),
    BattleFormat("gen9ru", "[Gen 9] RU", 2.0),
    BattleFormat("gen9nu", "[Gen 9] NU", 1.5),
    BattleFormat("gen9pu", "[Gen 9] PU", 1.0),
    BattleFormat("gen9zu", "[Gen 9] ZU", 0.5),
    BattleFormat("gen9lc", "[Gen 9] LC", 1.5),
    BattleFormat("gen9monotype", "[Gen 9] Monotype", 3.0),
    BattleFormat("gen9nationaldex", "[Gen 9] National Dex", 4.0),
    BattleFormat("gen9nationaldexmonotype", "[Gen 9] National Dex Monotype", 1.0),
    BattleFormat("gen9anythinggoes", "[Gen 9] Anything Goes", 1.0),
    BattleFormat("gen9balancedhackmons", "[Gen 9] Balanced Hackmons", 1.0),
    BattleFormat("gen9almostanyability", "[Gen 9] Almost Any Ability", 0.8),
    BattleFormat("gen9randomdoublesbattle", "[Gen 9] Random Doubles Battle", 4.0),
    BattleFormat("gen9doublesou", "[Gen 9] Doubles OU", 3.0),
    BattleFormat("gen9doublesuu", "[Gen 9] Doubles UU", 0.5),
    BattleFormat("gen9vgc2025regg", "[Gen 9] VGC 2025 Reg G", 4.0),
    BattleFormat("gen9vgc2025regh", "[Gen 9] VGC 2025 Reg H", 2.0),
    BattleFormat("gen9bssregg", "[Gen 9] BSS Reg G", 2.0),
    BattleFormat("gen9challengecup1v1", "[Gen 9] Challenge Cup 1v1", 1.0),
    BattleFormat("gen9hackmonscup", "[Gen 9] Hackmons Cup", 0.7),
    BattleFormat("gen9customgame", "[Gen 9] Custom Game", 1.2, rated=False),
    BattleFormat("gen9unratedrandombattle", "[Gen 9] Unrated Random Battle", 1.0, rated=False),
    BattleFormat("gen9multirandombattle", "[Gen 9] Multi Random Battle", 1.0, players=4),
    BattleFormat(
        "gen9freeforallrandombattle", "[Gen 9] Free-For-All Random Battle", 0.8, players=4
    ),
    BattleFormat("gen9freeforall", "[Gen 9] Free-For-All", 0.3, players=4),
    BattleFormat("gen8randombattle", "[Gen 8] Random Battle", 3.0),
    BattleFormat("gen8ou", "[Gen 8] OU", 2.0),
    BattleFormat("gen8nationaldex", "[Gen 8] National Dex", 1.0),
    BattleFormat("gen8vgc2022", "[Gen 8] VGC 2022", 0.5),
    BattleFormat("gen7randombattle", "[Gen 7] Random Battle", 1.5),
    BattleFormat("gen7ou", "[Gen 7] OU", 1.0),
    BattleFormat("gen6ou", "[Gen 6] OU", 0.6),
    BattleFormat("gen5ou", "[Gen 5] OU", 0.5),
    BattleFormat("gen4ou", "[Gen 4] OU", 0.6),
    BattleFormat("gen3ou", "[Gen 3] OU", 0.6),
    BattleFormat("gen2ou", "[Gen 2] OU", 0.4),
    BattleFormat("gen1ou", "[Gen 1] OU", 0.6),
    BattleFormat("gen1randombattle", "[Gen 1] Random Battle", 0.8),
)

# Names a real replay feed carries and naive loaders trip over: quotes, non-ASCII letters,
# a tab, SQL and HTML metacharacters. Each still has a non-empty ASCII userid.
SPECIAL_NAMES: tuple[str, ...] = (
    "Ash Ketchum",
    "Misty",
    "Pokémon Trainer Ñandú",
    "O'Malley",
    'The "Champion"',
    "Tab\tTrainer",
    "Zoë Ångström",
    "Ryu 山田",
    "Robert'); DROP TABLE replays;--",
    "<b>Bold</b> Brock",
    "back\\slash",
    "Émile-Ünal",
)

NAME_SYLLABLES: tuple[str, ...] = (
    "ka", "ri", "to", "ven", "mar", "lo", "zen", "ash", "ther", "syl", "dra", "gon", "mi",
    "sa", "ko", "ru", "nel", "vi", "an", "dor", "el", "ia", "quin", "bex", "yu", "ta",
)  # fmt: skip

TAG_WORDS: tuple[str, ...] = (
    "Shadow", "Blaze", "Storm", "Dragon", "Pixel", "Frost", "Thunder", "Mystic", "Vapor",
    "Lucky", "Iron", "Crimson", "Silent", "Nova", "Rogue", "Tidal", "Ember", "Zap",
)  # fmt: skip

TITLES: tuple[str, ...] = ("Ace", "Lady", "Sir", "Dr.", "Trainer", "Gym Leader", "Captain")
