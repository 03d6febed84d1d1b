"""Sample Discogs dumps: the hand-written files in data/, and generated large ones."""

from __future__ import annotations

import gzip
from pathlib import Path

DATA = Path(__file__).parent / "data"
ENTITIES = ("artists", "labels", "masters", "releases")


def sample(entity: str) -> Path:
    """The hand-written plain-XML sample of an entity."""
    return DATA / f"discogs_20990101_{entity}.xml"


def gzipped_copy(source: Path, directory: Path) -> Path:
    """``source`` gzipped into ``directory`` under the same name plus ``.gz``."""
    target = directory / f"{source.name}.gz"
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


def generated_release(number: int) -> str:
    """One realistic release element; ``number`` is its id."""
    tracks = "".join(
        f"<track><position>A{t}</position><title>Track {t}\t(Mix)</title><duration>5:0{t}"
        "</duration><extraartists><artist><id>9</id><name>Remixer</name><anv/><join/>"
        "<role>Remix</role><tracks/></artist></extraartists></track>"
        for t in range(4)
    )
    return (
        f'<release id="{number}" status="Accepted"><artists><artist><id>{number % 997 + 1}'
        f"</id><name>Artist &amp; {number}</name><anv/><join/><role/><tracks/></artist>"
        f"</artists><title>Title {number}&#13;\nsecond line</title><labels>"
        f'<label name="Label {number % 50}" catno="CAT {number}" id="{number % 50 + 1}"/>'
        '</labels><formats><format name="Vinyl" qty="1" text=""><descriptions>'
        '<description>12"</description></descriptions></format></formats><genres>'
        "<genre>Electronic</genre></genres><styles><style>Techno</style></styles>"
        "<country>Germany</country><released>1995-00-00</released>"
        f'<master_id is_main_release="true">{number // 3 + 1}</master_id>'
        f"<tracklist>{tracks}</tracklist></release>\n"
    )


def write_releases(path: Path, count: int, *, gzipped: bool = True) -> Path:
    """A releases dump of ``count`` generated records, written without holding it whole."""
    opener = gzip.open if gzipped else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write("<releases>\n")
        for number in range(1, count + 1):
            out.write(generated_release(number))
        out.write("</releases>\n")
    return path
