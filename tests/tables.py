"""Reading the terminal table back as a user reads it: one row per element or file."""

from __future__ import annotations


def squash(text: str, keep_spaces: bool = False) -> str:
    """``text`` with its whitespace removed (or made single spaces): rich wraps long cells
    over lines, at a space or inside a word."""
    return " ".join(text.split()) if keep_spaces else "".join(text.split())


#: The element table's columns, and how a wrapped cell's lines join: names and files wrap
#: inside a word, text at a space.
COLUMNS = (("element", ""), ("status", " "), ("stage", " "), ("slide", ""), ("organ", " "), ("detail", " "))


def table_cells(text: str) -> list[dict[str, str]]:
    """The rows of radpath's element table in ``text``, each a dict of its columns.

    A row starts where the status cell is filled (a status never wraps); the lines after
    it with an empty status continue its cells."""
    rows: list[list[list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("│") and line.endswith("│")):
            continue
        cells = [cell.strip() for cell in line[1:-1].split("│")]
        if len(cells) != len(COLUMNS):
            continue
        if cells[1]:
            rows.append([[cell] for cell in cells])
        elif rows:
            for parts, cell in zip(rows[-1], cells):
                if cell:
                    parts.append(cell)
    return [{name: joiner.join(parts) for (name, joiner), parts in zip(COLUMNS, row)} for row in rows]


def table_rows(text: str) -> list[tuple[str, str, str, str]]:
    """The (element, status, stage, detail) of each row of the element table in ``text``."""
    return [(row["element"], row["status"], row["stage"], row["detail"]) for row in table_cells(text)]
