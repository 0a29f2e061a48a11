"""What bytes really are: data files that are not data, media that is not what it claims.

Data files and the media they reference arrive in pull requests, so nothing here trusts a
file name, a MIME type or a base64 string. Three questions, each answered from the first
`SNIFF_BYTES` bytes (base64 is also validated to its end):

- `describe_non_data(head)`: is this the start of a JSON Lines / JSON array file? If not,
  a short description of what it looks like ("an ELF executable", "binary data with NUL
  bytes", "text that is not JSON Lines (starts with a letter)"). Descriptions never quote
  the file's bytes: a data file may be anything (``/proc/self/environ``), and whatever a
  diagnostic says ends up in CI logs.
- `media_problem(head, mime)`: do the bytes of a media part match its declared MIME type?
  A different family (an "image" that is a PDF, text, or nothing known) is an error; a
  different type within the family (PNG bytes declared ``image/jpeg``) a warning.
- `read_local_head(path)` / `decode_base64(data)`: the first bytes of a referenced local
  file (refusing anything that is not a regular file, without blocking on a FIFO) or of
  inline base64 data (validated strictly over its whole length).

File signatures come from the ``filetype`` package, imported inside the functions that
need it, so validating text-only data never pays for it. Two gaps of its tables are
filled here: ISO base media files (``ftyp`` boxes: MP4, QuickTime, 3GPP, HEIF/HEIC, M4A)
are classified by their major brand, and MPEG audio frames (MP3 with or without CRC,
ADTS AAC) by their sync word.
"""

from __future__ import annotations

import binascii
import os
import re
import stat as stat_module
import sys

SNIFF_BYTES = 8192
"""Bytes looked at to tell what a file is (``filetype`` looks at no more than this)."""

_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = b" \t\r\n"

# What `describe_non_data` and media messages call a detected type.
_NAMES = {
    "application/x-executable": "an ELF executable",
    "application/x-msdownload": "a Windows executable",
    "application/x-mach-binary": "a Mach-O executable",
    "application/wasm": "a WebAssembly module",
    "application/pdf": "a PDF document",
    "application/zip": "a ZIP archive",
    "application/epub+zip": "an EPUB book",
    "application/x-tar": "a tar archive",
    "application/x-rar-compressed": "a RAR archive",
    "application/x-7z-compressed": "a 7-Zip archive",
    "application/gzip": "gzip-compressed data",
    "application/x-bzip2": "bzip2-compressed data",
    "application/x-xz": "xz-compressed data",
    "application/zstd": "zstd-compressed data",
    "application/x-lz4": "lz4-compressed data",
    "application/x-brotli": "brotli-compressed data",
    "application/x-sqlite3": "an SQLite database",
    "application/postscript": "a PostScript document",
    "application/rtf": "an RTF document",
    "application/x-parquet": "a Parquet file",
    "application/x-numpy": "a NumPy array file",
    "application/msword": "a Word document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "a Word document",
    "application/vnd.ms-excel": "an Excel workbook",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "an Excel workbook",
    "application/vnd.ms-powerpoint": "a PowerPoint presentation",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "a PowerPoint presentation",
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "image/heic": "a HEIC image",
    "image/heif": "a HEIF image",
    "image/avif": "an AVIF image",
    "image/bmp": "a BMP image",
    "image/tiff": "a TIFF image",
    "audio/x-wav": "a WAV audio file",
    "audio/mpeg": "an MP3 audio file",
    "audio/x-flac": "a FLAC audio file",
    "audio/aac": "an AAC audio file",
    "audio/ogg": "an Ogg audio file",
    "audio/x-aiff": "an AIFF audio file",
    "audio/mp4": "an M4A audio file",
    "video/mp4": "an MP4 video",
    "video/quicktime": "a QuickTime video",
    "video/3gpp": "a 3GPP video",
    "video/webm": "a WebM file",
    "video/x-matroska": "a Matroska file",
    "video/mpeg": "an MPEG video",
    "video/x-flv": "a Flash video",
    "video/x-ms-wmv": "a Windows Media file",
    "video/x-msvideo": "an AVI video",
}

# Names of one format: a declared type and a detected one in the same set are a match.
# ISO base media (MP4, QuickTime, 3GPP, M4A) is one set: files mix their brands freely.
_SAME = [
    {"image/jpeg", "image/jpg", "image/pjpeg"},
    {"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"},
    {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"},
    {"audio/mp3", "audio/mpeg", "audio/mpeg3", "audio/x-mp3", "audio/mpga"},
    {"audio/flac", "audio/x-flac"},
    {"audio/aiff", "audio/x-aiff"},
    {"audio/aac", "audio/x-aac", "audio/aacp"},
    {"audio/ogg", "application/ogg", "audio/opus", "video/ogg"},
    {"audio/webm", "video/webm", "video/x-matroska", "audio/x-matroska"},
    {"video/mp4", "video/quicktime", "video/3gpp", "video/3gpp2", "video/x-m4v", "audio/mp4", "audio/m4a", "audio/x-m4a"},
    {"video/wmv", "video/x-ms-wmv", "video/x-ms-asf", "audio/x-ms-wma"},
    {"video/x-flv", "video/flv"},
    {"video/mpeg", "video/mpg"},
    {"video/avi", "video/x-msvideo"},
]
_CANONICAL = {name: i for i, names in enumerate(_SAME) for name in names}

# ISO base media files: major brand -> MIME type (anything else with an ftyp box: video/mp4).
_FTYP_BRANDS = {
    **dict.fromkeys(["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1", "mif2"], "image/heif"),
    "avif": "image/avif",
    "avis": "image/avif",
    "M4A ": "audio/mp4",
    "M4B ": "audio/mp4",
    "qt  ": "video/quicktime",
}


def family(mime: str) -> str:
    """``image``, ``audio``, ``video``, ``document`` (PDF, plain text) or ``other``."""
    if mime in ("application/ogg",):
        return "audio"
    if mime in ("application/pdf", "text/plain"):
        return "document"
    top = mime.split("/", 1)[0]
    return top if top in ("image", "audio", "video") else "other"


def name_of(mime: str) -> str:
    """How a message calls a detected type: "a PNG image", or "a file of type x/y"."""
    return _NAMES.get(mime) or f"a file of type {mime}"


def guess_mime(head: bytes) -> str | None:
    """The MIME type the first bytes of a file say it has, or None if no signature is known."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12].decode("latin-1")
        if brand.startswith(("3gp", "3g2")):
            return "video/3gpp"
        return _FTYP_BRANDS.get(brand, "video/mp4")
    if head.startswith(b"FORM") and head[8:12] == b"AIFC":  # compressed AIFF, which filetype misses
        return "audio/x-aiff"
    if head.startswith(b"PAR1"):
        return "application/x-parquet"
    if head.startswith(b"\x93NUMPY"):
        return "application/x-numpy"
    if head.startswith((b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")):
        return "application/x-mach-binary"
    import filetype  # signatures: imported only when some bytes must be identified

    kind = filetype.guess(head[:SNIFF_BYTES])
    if kind is not None:
        return kind.mime
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08:
        # An MPEG audio frame: layer bits 00 are ADTS (AAC), others MP1/2/3 audio.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    return None


# Data files ---------------------------------------------------------------------------


def describe_non_data(head: bytes, layout: str = "jsonl") -> str | None:
    """None if `head` (the first bytes of a JSON/JSONL file, decompressed) may be data:
    blank, or starting with ``{`` or ``[`` and free of NUL bytes. Otherwise what the file
    looks like, in words, without quoting any of it."""
    body = head[3:] if head.startswith(_BOM) else head
    if body.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 text"
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(body) >= 2 and body[0] in b"{[" and body[1] == 0):
        return "UTF-16 text"
    text = body.lstrip(_JSON_SPACE)
    if not text:
        return None
    nul = b"\x00" in body
    if text[:1] in (b"{", b"[") and not nul:
        return None
    mime = guess_mime(body)
    if mime is not None:
        return name_of(mime)
    if nul:
        return "binary data with NUL bytes"
    return _text_kind(text, "JSON" if layout == "json" else "JSON Lines")


def _text_kind(text: bytes, what: str) -> str:
    """What a head that starts with neither ``{`` nor ``[`` (and has no NUL) looks like."""
    b = text[0]
    if b >= 0x80:
        if not _is_utf8(text):
            return "binary data (not UTF-8 text)"
        start = "a non-ASCII character"
    elif b < 0x20 or b == 0x7F:
        return "binary data (starts with a control character)"
    elif chr(b).isalpha():
        start = "a letter"
    elif chr(b).isdigit() or b == ord("-"):
        start = "a number"
    elif b == ord('"'):
        start = "a string, not an object"
    elif b == ord("<"):
        return "markup such as HTML or XML, not " + what
    elif b == ord("#"):
        start = "a comment sign"
    else:
        start = "a punctuation character"
    return f"text that is not {what} (starts with {start})"


def _is_utf8(head: bytes) -> bool:
    """True if `head` is UTF-8, allowing a character cut off at the end of the head."""
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"


def non_regular_kind(mode: int) -> str | None:
    """"a directory", "a character device", ... for a file mode that is not a regular file."""
    if stat_module.S_ISREG(mode):
        return None
    if stat_module.S_ISDIR(mode):
        return "a directory"
    if stat_module.S_ISCHR(mode):
        return "a character device"
    if stat_module.S_ISBLK(mode):
        return "a block device"
    if stat_module.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat_module.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# Media --------------------------------------------------------------------------------


def read_local_head(path: str, n: int = SNIFF_BYTES) -> tuple[bytes | None, str | None]:
    """The first `n` bytes of a local file: ``(head, None)``; or ``(None, why)`` when it is
    not a regular file (a directory, a device, a FIFO: never opened in blocking mode, never
    read past `n` bytes) or cannot be read."""
    try:
        kind = non_regular_kind(os.stat(path).st_mode)
        if kind is not None:
            return None, f"is {kind}, not a regular file"
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it does
        # not wait for a writer; fstat below then refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        kind = non_regular_kind(os.fstat(fd).st_mode)
        if kind is not None:
            return None, f"is {kind}, not a regular file"
        chunks, left = [], n
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or type(exc).__name__})"
    finally:
        os.close(fd)


_B64_CHUNK = 4 << 20  # characters decoded at a time (a multiple of 4)
_B64_ALPHABET = re.compile(r"[^A-Za-z0-9+/=]")
_B64_STRICT = sys.version_info >= (3, 11)
_B64_SHAPE = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_base64(data: str, n: int = SNIFF_BYTES) -> tuple[bytes | None, str | None]:
    """Validate `data` as strict standard base64 (RFC 4648 alphabet, padding only at the
    end, no whitespace) over its whole length, decoding it piece by piece; return its
    first `n` decoded bytes, or ``(None, what is wrong)``."""
    if len(data) % 4:
        bad = _B64_ALPHABET.search(data)
        if bad is None:
            return None, f"base64 length {len(data):,} is not a multiple of 4 (cut off, or padding `=` missing)"
        return None, _bad_character(data, bad.start())
    head = b""
    for start in range(0, len(data), _B64_CHUNK):
        piece = data[start : start + _B64_CHUNK]
        try:
            if _B64_STRICT:
                decoded = binascii.a2b_base64(piece, strict_mode=True)
            else:  # Python 3.10: no strict mode; check the shape, then decode
                if not _B64_SHAPE.fullmatch(piece) or ("=" in piece and start + len(piece) < len(data)):
                    raise ValueError("not strict base64")
                decoded = binascii.a2b_base64(piece)
        except ValueError:  # binascii.Error, or non-ASCII text
            bad = _B64_ALPHABET.search(piece)
            if bad is not None:
                return None, _bad_character(data, start + bad.start())
            return None, "padding `=` inside the data (only allowed at its end)"
        if start == 0:
            head = decoded[:n]
    return head, None


def _bad_character(data: str, at: int) -> str:
    ch = data[at]
    if ch in "-_":
        what = "a URL-safe base64 character (`-` or `_`); use standard base64 (`+` and `/`)"
    elif ch.isspace():
        what = "a line break or space; base64 data must be one unbroken string"
    else:
        what = "a character outside the base64 alphabet"
    return f"invalid base64 at offset {at:,}: {what}"


_TEXT_BYTES = b"\t\n\r\x0c" + bytes(range(32, 127)) + bytes(range(128, 256))


def _looks_like_text(head: bytes) -> bool:
    """True if `head` is UTF-8 text without control bytes (other than tab and line ends):
    never the case for the first bytes of an image, audio or video file."""
    return bool(head) and _is_utf8(head) and not head.translate(None, _TEXT_BYTES)


def media_problem(head: bytes, mime: str, complete: bool) -> tuple[bool, str, str | None] | None:
    """Whether the first bytes of a media part match its declared `mime`.

    None if they do; else ``(is_error, what the bytes are, their MIME type if known)``:
    an error when they are another family of file, text, empty or of no known type; a
    warning (``is_error`` False) when they are another type of the same family.
    `complete`: `head` is the whole file or data, not just its start.
    """
    if not head:
        return True, "empty", None
    if mime == "text/plain":
        if b"\x00" not in head:
            if not complete and _is_utf8(head):
                return None
            try:
                head.decode("utf-8")
                return None
            except UnicodeDecodeError:
                pass
        found = guess_mime(head)
        if found is not None:
            return True, name_of(found), found
        return True, ("binary data with NUL bytes" if b"\x00" in head else "not valid UTF-8 text"), None
    want = family(mime)
    media = want in ("image", "audio", "video")
    if media and _looks_like_text(head):
        # Checked first: a text file whose first letters happen to match a weak
        # signature ("BM" is a BMP image) is still text.
        return True, "text", None
    found = guess_mime(head)
    if found is None:
        return True, f"no known {want if media else 'document'} format", None
    if found == mime or _CANONICAL.get(found, -1) == _CANONICAL.get(mime, -2):
        return None
    return family(found) != want, name_of(found), found
