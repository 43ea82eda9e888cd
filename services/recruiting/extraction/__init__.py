"""Text out of an uploaded CV: PDF, DOCX or plain text, the type sniffed from the bytes (never the file name).

Every rejection is InvalidArgument naming `content`. Limits: 10 MiB in; a DOCX's zip directory is checked
(entry count, each entry's and the total uncompressed size, compression ratio) before anything is
decompressed, and Python's zipfile never inflates past the size the directory declares, so a zip bomb is
refused up front; a PDF is read for at most MAX_PDF_PAGES pages; the extracted text is capped.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass

from services.common.errors import InvalidArgument

log = logging.getLogger("hiremeter.recruiting.extraction")

MAX_CONTENT_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 100_000  # about 25k tokens: more than any real CV, bounded cost per parse
MAX_PDF_PAGES = 50
MAX_ZIP_ENTRIES = 2_000
MAX_ZIP_ENTRY_BYTES = 32 * 1024 * 1024
MAX_ZIP_TOTAL_BYTES = 64 * 1024 * 1024
MAX_ZIP_RATIO = 200  # uncompressed / compressed, for entries above 1 MiB

PDF, DOCX, TEXT = "pdf", "docx", "text"


@dataclass(frozen=True)
class ExtractedText:
    source_format: str  # "pdf", "docx" or "text"
    text: str
    truncated: bool = False


_UNSUPPORTED_MAGIC = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Word/OLE document (.doc); save it as DOCX or PDF"),
    (b"{\\rtf", "an RTF document; save it as DOCX or PDF"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7z archive"),
)


def sniff(content: bytes) -> str:
    """ "pdf", "docx" or "text" from the bytes themselves; InvalidArgument for anything else."""
    if b"%PDF-" in content[:1024]:
        return PDF
    if content.startswith(b"PK\x03\x04"):
        return DOCX
    for magic, what in _UNSUPPORTED_MAGIC:
        if content.startswith(magic):
            raise InvalidArgument(f"content is {what}: only PDF, DOCX and UTF-8 text are supported")
    return TEXT


def extract_text(content: bytes) -> ExtractedText:
    if not content:
        raise InvalidArgument("content must not be empty")
    if len(content) > MAX_CONTENT_BYTES:
        raise InvalidArgument(
            f"content must be at most {MAX_CONTENT_BYTES} bytes (10 MiB), got {len(content)} bytes"
        )
    kind = sniff(content)
    text = {PDF: _pdf_text, DOCX: _docx_text, TEXT: _plain_text}[kind](content)
    text = _tidy(text)
    if not text:
        hint = " (a scanned PDF needs OCR first)" if kind == PDF else ""
        raise InvalidArgument(f"content has no extractable text{hint}")
    truncated = len(text) > MAX_TEXT_CHARS
    return ExtractedText(kind, text[:MAX_TEXT_CHARS], truncated)


def _tidy(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.replace("\x00", "").splitlines())
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _plain_text(content: bytes) -> str:
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = content.decode("utf-16")
        except UnicodeDecodeError:
            raise InvalidArgument("content is not valid UTF-16 text") from None
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidArgument(
                "content is not a PDF, a DOCX or UTF-8 text (unsupported or binary file)"
            ) from None
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if "\x00" in text or control > max(8, len(text) // 100):
        raise InvalidArgument("content is binary, not text: only PDF, DOCX and UTF-8 text are supported")
    return text


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            # Owner-password-only PDFs (print/copy restrictions) open with the empty user password: those are
            # readable CVs. Anything needing a real password is refused.
            try:
                opened = reader.decrypt("")
            except Exception:  # noqa: BLE001 - unsupported crypto is still "encrypted"
                opened = 0
            if not opened:
                raise InvalidArgument("content is an encrypted PDF: upload it without a password")
        pages = reader.pages
        parts = []
        for index, page in enumerate(pages):
            if index >= MAX_PDF_PAGES:
                break
            parts.append(page.extract_text() or "")
            if sum(len(part) for part in parts) > MAX_TEXT_CHARS:
                break
        return "\n".join(parts)
    except InvalidArgument:
        raise
    except FileNotDecryptedError:
        raise InvalidArgument("content is an encrypted PDF: upload it without a password") from None
    except (
        PdfReadError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
    ) as error:
        log.info("corrupt pdf", extra={"error": repr(error)[:200]})
        raise InvalidArgument("content is a corrupt PDF") from None
    except Exception as error:  # noqa: BLE001 - pypdf raises many types on hostile input
        log.info("unreadable pdf", extra={"error": repr(error)[:200]})
        raise InvalidArgument("content is a corrupt PDF") from None


def _check_zip_directory(archive: zipfile.ZipFile) -> None:
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise InvalidArgument(f"content is a DOCX with too many parts ({len(entries)})")
    total = 0
    for entry in entries:
        if entry.file_size > MAX_ZIP_ENTRY_BYTES:
            raise InvalidArgument("content is a DOCX whose parts expand beyond the limit (zip bomb?)")
        if entry.file_size > 1024 * 1024 and entry.file_size > MAX_ZIP_RATIO * max(entry.compress_size, 1):
            raise InvalidArgument("content is a DOCX with an implausible compression ratio (zip bomb?)")
        total += entry.file_size
    if total > MAX_ZIP_TOTAL_BYTES:
        raise InvalidArgument("content is a DOCX whose parts expand beyond the limit (zip bomb?)")


def _docx_text(content: bytes) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise InvalidArgument("content is a corrupt zip/DOCX file") from None
    with archive:
        _check_zip_directory(archive)
        names = set(archive.namelist())
        if "word/document.xml" not in names:
            raise InvalidArgument("content is a zip archive but not a DOCX (no word/document.xml)")
        if any(info.flag_bits & 0x1 for info in archive.infolist()):
            raise InvalidArgument("content is an encrypted zip/DOCX file")
    try:
        document = docx.Document(io.BytesIO(content))
        parts = [paragraph.text for paragraph in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                cells: list[str] = []
                for cell in row.cells:
                    if cell.text not in cells:  # merged cells repeat their text
                        cells.append(cell.text)
                parts.append(" | ".join(cells))
        for section in document.sections:
            for paragraph in section.header.paragraphs:
                parts.insert(0, paragraph.text)
        return "\n".join(parts)
    except InvalidArgument:
        raise
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        log.info("corrupt docx", extra={"error": repr(error)[:200]})
        raise InvalidArgument("content is a corrupt DOCX file") from None
    except Exception as error:  # noqa: BLE001 - lxml and python-docx raise many types on hostile input
        log.info("unreadable docx", extra={"error": repr(error)[:200]})
        raise InvalidArgument("content is a corrupt DOCX file") from None
