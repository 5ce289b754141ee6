"""CSV files in and out (导入导出): encoding, decoding and reading rows.

Exports start with a UTF-8 byte order mark: without it Excel on a Chinese
Windows reads the file as GBK and garbles every name. Imports accept the
text with or without that mark, or the raw bytes of the file in base64,
which may also be GBK (what Excel writes when saving as "CSV").
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from meihua.resolvers.errors import BadUserInput, LimitExceeded, MeihuaError

BOM = "\ufeff"
MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024
TRUE = {"true", "yes", "1", "是"}
FALSE = {"false", "no", "0", "否", ""}
TAG_SEPARATOR = ";"


@dataclass
class RowError:
    line: int  # line of the file, the header being line 1
    field: str | None
    code: str
    message: str

    @classmethod
    def of(cls, line: int, error: MeihuaError) -> RowError:
        return cls(line, error.extensions.get("field"), error.code, error.message)


@dataclass
class Row:
    line: int
    cells: dict[str, str]


def encode(headers: list[str], rows: Iterable[list[object]]) -> str:
    """CSV text with a BOM; None becomes an empty cell."""
    return BOM + encode_rows(itertools.chain([headers], rows))


def encode_rows(rows: Iterable[list[object]]) -> str:
    """CSV lines alone, to follow `encode(headers, [])` when a file is written in parts."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return out.getvalue()


def decode(raw: bytes) -> str:
    """UTF-8 (with or without a BOM), else GBK."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gbk")
    except UnicodeDecodeError:
        raise BadUserInput(
            "The file is neither UTF-8 nor GBK text.", field="contentBase64"
        ) from None


def uploaded_text(content: str | None, content_base64: str | None) -> str:
    """The file's text from exactly one of `content` and `contentBase64`."""
    if (content is None) == (content_base64 is None):
        raise BadUserInput("Send either `content` or `contentBase64`.", field="content")
    if content is not None:
        if len(content) > MAX_BYTES:  # characters: cheap, and never below the bytes
            raise LimitExceeded(f"A file is at most {MAX_BYTES // 1024 // 1024} MB.")
        if len(content.encode("utf-8")) > MAX_BYTES:
            raise LimitExceeded(f"A file is at most {MAX_BYTES // 1024 // 1024} MB.")
        return content.removeprefix(BOM)
    if len(content_base64) > MAX_BYTES * 4 // 3 + 4:
        raise LimitExceeded(f"A file is at most {MAX_BYTES // 1024 // 1024} MB.")
    try:
        raw = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise BadUserInput("`contentBase64` is not base64.", field="contentBase64") from None
    if len(raw) > MAX_BYTES:
        raise LimitExceeded(f"A file is at most {MAX_BYTES // 1024 // 1024} MB.")
    return decode(raw)


def read_rows(text: str, columns: list[str], required: str) -> list[Row]:
    """The data rows by column name; blank lines are skipped.

    Unknown columns are refused rather than ignored, so a misspelt header
    does not silently import a column as empty.
    """
    if "\x00" in text:
        raise BadUserInput("The file must not contain NUL characters.", field="content")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        headers = [header.strip() for header in next(reader)]
    except StopIteration:
        raise BadUserInput("The file is empty.", field="content") from None
    except csv.Error as error:
        raise BadUserInput(f"Line 1 is not valid CSV: {error}.", field="content") from None
    unknown = [h for h in headers if h not in columns]
    if unknown:
        raise BadUserInput(
            f"Unknown columns: {', '.join(unknown)}; expected {', '.join(columns)}.",
            field="content",
        )
    if required not in headers:
        raise BadUserInput(f"The `{required}` column is required.", field="content")
    if len(set(headers)) != len(headers):
        raise BadUserInput("A column appears twice in the header.", field="content")
    rows: list[Row] = []
    line = reader.line_num + 1  # a quoted cell may span lines: rows start after the last
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(rows) == MAX_ROWS:
                    raise LimitExceeded(f"A file holds at most {MAX_ROWS} rows.")
                rows.append(Row(line, dict(zip(headers, cells, strict=False))))
            line = reader.line_num + 1
    except csv.Error as error:
        raise BadUserInput(f"Line {line} is not valid CSV: {error}.", field="content") from None
    return rows


def flag(value: str, field: str) -> bool | None:
    """A yes/no cell; an empty one says nothing."""
    value = value.strip().casefold()
    if not value:
        return None
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadUserInput(f"`{field}` is neither true nor false.", field=field)
