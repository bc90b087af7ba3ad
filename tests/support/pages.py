"""Reading the server's HTML pages in tests: the cells of a table."""

from __future__ import annotations

from html.parser import HTMLParser


def html_table(html: str, table_id: str) -> list[list[str]]:
    """Return the body rows of the HTML table with id `table_id` as lists of cell texts
    (whitespace collapsed); header-only rows are left out. For page tests."""

    class _Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.inside, self.rows, self.cell = False, [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table" and dict(attrs).get("id") == table_id:
                self.inside = True
            elif self.inside and tag == "tr":
                self.rows.append([])
            elif self.inside and tag == "td":
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "table":
                self.inside = False
            elif self.inside and tag == "td" and self.cell is not None:
                self.rows[-1].append(" ".join(self.cell.split()))
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = _Cells()
    parser.feed(html)
    return [row for row in parser.rows if row]
