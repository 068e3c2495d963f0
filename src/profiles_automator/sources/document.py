"""One fetched PMR file, and the checks every fetched file must pass.

The checks run before a body is cached or handed to the parser, so that a wrong URL (an HTML
page), a binary file or an oversized file fails with a message naming the file instead of a
YAML parser error.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiles_automator.sources.errors import FetchError

RAW_URL_HINT = "is the URL a raw file URL?"


@dataclass(frozen=True)
class PMRDocument:
    """A PMR file: its name as the administrator knows it, and its bytes (UTF-8 YAML)."""

    name: str
    content: bytes


def format_size(size: int) -> str:
    """Render a byte count for messages, e.g. ``1 MiB (1048576 bytes)``."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit} ({size} bytes)"
    return f"{size} bytes"


class TooLargeError(FetchError):
    """A body is over its size limit; `size` is None when it was not read in full."""

    def __init__(self, message: str, size: int | None) -> None:
        super().__init__(message)
        self.size = size


def too_large_error(
    name: str, limit: int, size: int | None = None, hint: str = ""
) -> TooLargeError:
    """Build the error for a body over the size limit (`size` None: it was not read in full)."""
    actual = format_size(size) if size is not None else f"more than {format_size(limit)}"
    return TooLargeError(
        f"{name} is too large: {actual}, the limit is {format_size(limit)}"
        + (f"; {hint}" if hint else ""),
        size,
    )


def looks_like_html(body: bytes, content_type: str = "") -> bool:
    """Tell whether an answer is a web page (login page, proxy error, GitHub's HTML view)."""
    if content_type.split(";", 1)[0].strip().lower() in {"text/html", "application/xhtml+xml"}:
        return True
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html"))


def check_document(
    name: str,
    body: bytes,
    *,
    content_type: str = "",
    max_bytes: int,
    html_hint: str = "",
    too_large_hint: str = "",
) -> None:
    """Refuse a body that is too large, an HTML page, or not UTF-8 text.

    Raises:
        FetchError: naming the file and what is wrong with it.
    """
    if len(body) > max_bytes:
        raise too_large_error(name, max_bytes, len(body), too_large_hint)
    if looks_like_html(body, content_type):
        raise FetchError(f"{name}: got an HTML page, not YAML: {html_hint or RAW_URL_HINT}")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError(
            f"{name} is not UTF-8 text (byte 0x{body[exc.start]:02x} at offset {exc.start}): "
            "save it with UTF-8 encoding"
        ) from None
