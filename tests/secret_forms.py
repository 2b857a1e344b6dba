"""A credential's echoes, and a search for them that does not trust the scrubber.

:func:`echoes` lists the ways an HTTP client or server may write a key it was sent: as is, in
its header line, base64-encoded inside a longer string at each of the three byte offsets
(``Bearer <key>``, ``Authorization: Bearer <key>``, HTTP Basic's ``user:<key>``; standard and
URL-safe alphabet, padded or not), percent-encoded (upper- and lower-case hex, every character
or only the reserved ones) and JSON-escaped (``\\uXXXX`` for every character, ``\\/``).

:func:`leaks` finds a key in a blob by *decoding* instead: it reads the blob as is,
percent-decoded, JSON-unescaped, and each of those again (up to four rounds), and in each view
looks for the key itself and base64-decodes every run of base64 characters from each of its
four alignments. So it finds the key in any of those encodings (and combinations of them)
without knowing how the scrubber looks for them. :func:`written_text` gathers what a run left on disk for it to search.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl

__all__ = ["echoes", "leaks", "written_text"]

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}")
_TO_STANDARD = str.maketrans("-_", "+/")
_JSON_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|([\"\\/]))")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _json_unescape(text: str) -> str:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], text)


def _views(blob: str) -> list[str]:
    """``blob`` as is and after every sequence of up to four percent-decodings and
    JSON-unescapings (JSON in JSON in a URL)."""
    views, frontier = [blob], [blob]
    for _ in range(4):
        frontier = [v for f in frontier for v in (unquote(f, errors="replace"), _json_unescape(f)) if v not in views]
        views += frontier
    return views


def _in_base64(text: str, key: bytes) -> bool:
    for run in _B64_RUN.findall(text):
        standard = run.translate(_TO_STANDARD)
        for shift in range(4):
            chunk = standard[shift:]
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk + "=" * (-len(chunk) % 4)
            try:
                if key in base64.b64decode(chunk, validate=True):
                    return True
            except (binascii.Error, ValueError):
                continue
    return False


def leaks(blob: str, key: str) -> list[str]:
    """How ``key`` can be read in ``blob``: ``"raw"`` and/or ``"base64"``, each followed by
    the decoding rounds needed; empty when it cannot be read."""
    found: list[str] = []
    for rounds, view in enumerate(_views(blob)):
        if key in view:
            found.append(f"raw (view {rounds})")
        if _in_base64(view, key.encode()):
            found.append(f"base64 (view {rounds})")
    return found


def _percent_every_char(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def _json_every_char(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def echoes(key: str) -> dict[str, str]:
    """Every way of writing ``key`` listed in the module docstring, by name."""
    header = f"Authorization: Bearer {key}"
    out = {"raw": key, "bearer": f"Bearer {key}", "header": header}
    for lead in ("", "x", "xy"):  # puts the key at each offset modulo 3 in the encoded string
        for name, plain in (("bearer", f"Bearer {key}"), ("header", header), ("basic", f"user:{key}")):
            text = f"{lead}{plain}".encode()
            at = f"{name} @{(len(text) - len(key.encode())) % 3}"
            out[f"base64 {at}"] = base64.b64encode(text).decode()
            out[f"base64 {at} unpadded"] = base64.b64encode(text).decode().rstrip("=")
            out[f"urlsafe base64 {at}"] = base64.urlsafe_b64encode(text).decode()
    out["Basic header"] = f"Authorization: Basic {base64.b64encode(f':{key}'.encode()).decode()}"
    out["percent"] = quote(header, safe="")
    out["percent lower"] = _PERCENT.sub(lambda m: m[0].lower(), quote(header, safe=""))
    out["percent every char"] = _percent_every_char(header)
    out["percent every char lower"] = _percent_every_char(header).lower()
    out["percent base64"] = quote(out["base64 header @2"], safe="")
    out["JSON every char"] = _json_every_char(header)
    out["JSON every char upper"] = _json_every_char(header).upper().replace("\\U", "\\u")
    out["JSON slashes"] = header.replace("/", "\\/")
    out["JSON slashes base64"] = out["base64 header @0"].replace("/", "\\/")
    out["JSON in JSON"] = json.dumps(json.dumps({"authorization": out["JSON every char"]}))
    return out


def written_text(root: Path) -> str:
    """Every file under ``root`` as text: raw bytes, and Parquet decoded column by column
    (compressed pages would hide a string from a byte search); "" when ``root`` is absent."""
    chunks: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        chunks.append(path.read_bytes().decode("latin-1"))
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            chunks.extend(str(v) for column in frame.columns for v in frame[column].to_list())
    return "\n".join(chunks)
