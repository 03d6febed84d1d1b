"""Streaming the records (depth-1 elements) of a huge XML document with bounded memory.

expat parses the chunks and calls ElementTree's C TreeBuilder directly for element starts
and text; only element ends pass through one line of Python, which remembers the element
closed last. After each chunk, every child of the root but the last is complete, and the
last is complete exactly when it is the element closed last: those are handed out and
removed from the root, so the tree never holds more than about one chunk of records, and
after a break (a file cut short) every record completed before it is still handed out.
Only depth-1 elements are records, so a ``<label>`` nested in a label's ``<sublabels>``
stays part of its record.

Safety: a document type declaration (``<!DOCTYPE``) is refused outright. Without one no
entity can be declared, so no entity is ever expanded (no "billion laughs") and no
external entity or DTD is fetched; an undeclared entity such as ``&eacute;`` is a
well-formedness error. This does not depend on the expat version's own amplification
limits.
"""

from __future__ import annotations

import pyexpat
from collections.abc import Iterable, Iterator
from xml.etree.ElementTree import Element, TreeBuilder

from extractor.sources.dumps.errors import DumpError, DumpFormatError, DumpTruncatedError


class _Refused(Exception):
    """Raised inside an expat callback to stop at something the reader never accepts."""


class XmlRecordStream:
    """The records of one XML document fed in chunks, each handed out once complete."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root: Element | None = None
        self._builder = TreeBuilder()
        self._end_element = self._builder.end
        self._closed_last: Element | None = None
        self._parser = self._new_parser()

    def _new_parser(self) -> pyexpat.XMLParserType:
        parser = pyexpat.ParserCreate()
        parser.buffer_text = True
        parser.buffer_size = 64 * 1024
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.StartElementHandler = self._start_root
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._builder.data
        return parser

    @property
    def root_tag(self) -> str | None:
        """The document element's name, once parsing has reached it."""
        return None if self.root is None else self.root.tag

    @property
    def held(self) -> int:
        """Records parsed but not handed out yet (at most one between chunks)."""
        return 0 if self.root is None else len(self.root)

    def elements(self, chunks: Iterable[bytes]) -> Iterator[Element]:
        """Every complete record, in order; then a DumpError if the document is bad.

        On an error, the records completed before it are handed out first.
        """
        try:
            for chunk in chunks:
                yield from self.feed(chunk)
            yield from self.close()
        except DumpError:
            yield from self._take(final=False)
            raise

    def feed(self, chunk: bytes) -> list[Element]:
        """Parse one chunk; return the records it completed."""
        self._parse(chunk, final=False)
        return self._take(final=False)

    def close(self) -> list[Element]:
        """Finish the document; return the records still held."""
        self._parse(b"", final=True)
        return self._take(final=True)

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except _Refused as exc:
            line, column = self._parser.ErrorLineNumber, self._parser.ErrorColumnNumber
            raise DumpFormatError(self.name, str(exc), line=line, column=column) from None
        except pyexpat.ExpatError as exc:
            raise self._error(exc, final=final) from None

    def _error(self, exc: pyexpat.ExpatError, *, final: bool) -> DumpError:
        reason = pyexpat.ErrorString(exc.code) or str(exc)
        where = {"line": exc.lineno, "column": exc.offset}
        if final and self.root is None:
            return DumpTruncatedError(self.name, "no XML element: the file is empty or cut short")
        if final:
            return DumpTruncatedError(
                self.name,
                f"the document ends before its root element is closed ({reason}): "
                "the file is cut short",
                **where,
            )
        if not reason.startswith("not well-formed"):
            reason = f"not well-formed XML: {reason}"
        return DumpFormatError(self.name, reason, **where)

    def _take(self, *, final: bool) -> list[Element]:
        """Detach the complete records from the root: all but the last, unless it is closed."""
        root = self.root
        if root is None or len(root) == 0:
            return []
        end = len(root) if final or root[-1] is self._closed_last else len(root) - 1
        done = root[:end]
        del root[:end]
        return done

    def _start_root(self, tag: str, attrs: dict[str, str]) -> None:
        """Capture the document element, then let expat call the C TreeBuilder directly."""
        self.root = self._builder.start(tag, attrs)
        self._parser.StartElementHandler = self._builder.start

    def _end(self, tag: str) -> None:
        self._closed_last = self._end_element(tag)

    def _refuse_doctype(self, *args: object) -> None:
        raise _Refused(
            "a document type declaration (<!DOCTYPE>) is not accepted in a dump: "
            "entities are never expanded and external DTDs never fetched"
        )

    def _refuse_entity(self, *args: object) -> None:
        raise _Refused("an entity declaration is not accepted in a dump")
