"""What bytes really are: data files that are not data.

Data files arrive in pull requests, so nothing here trusts a file name.
`describe_non_data(head)` answers, from the first `SNIFF_BYTES` bytes only: is this the
start of a JSON Lines / JSON array file? If not, a short description of what it looks
like ("an ELF executable", "binary data with NUL bytes", "text that is not JSON Lines
(starts with a letter)"). Descriptions never quote the file's bytes: a data file may be
anything (``/proc/self/environ``), and whatever a diagnostic says ends up in CI logs.

File signatures come from the ``filetype`` package, imported inside the function that
needs it (only for a file that does not start like JSON), so validating data never pays
for it. Two gaps of its tables are filled here: ISO base media files (``ftyp`` boxes:
MP4, QuickTime, 3GPP, HEIF/HEIC, M4A) are classified by their major brand, and MPEG
audio frames (MP3 with or without CRC, ADTS AAC) by their sync word.
"""

from __future__ import annotations

import stat as stat_module

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

# ISO base media files: major brand -> MIME type (anything else with an ftyp box: video/mp4).
_FTYP_BRANDS = {
    **dict.fromkeys(["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1", "mif2"], "image/heif"),
    "avif": "image/avif",
    "avis": "image/avif",
    "M4A ": "audio/mp4",
    "M4B ": "audio/mp4",
    "qt  ": "video/quicktime",
}


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
