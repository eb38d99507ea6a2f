"""The tables and tiles of a `loader report` page, as text."""

from __future__ import annotations

from html.parser import HTMLParser


class Tables(HTMLParser):
    """The cells' text of every table and the tiles (value, label), in page order."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tiles: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._tile: list[str] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "div" and ("value" in classes or "label" in classes):
            self._in = classes[0]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "div" and self._in:
            if self._in == "label":
                value, label = self._tile
                self.tiles[label] = value
                self._tile = []
            self._in = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in:
            self._tile.append(data)

    def table(self, first_header: str, second_header: str) -> list[dict[str, str]]:
        [rows] = [t for t in self.tables if t[0][:2] == [first_header, second_header]]
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
