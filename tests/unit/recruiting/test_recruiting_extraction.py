"""Extraction: the type comes from the bytes, and every bad file is INVALID_ARGUMENT naming `content`."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.recruiting.extraction import MAX_CONTENT_BYTES, extract_text
from tests.unit.recruiting.recruiting_files import (
    make_blank_pdf,
    make_docx,
    make_pdf,
    make_zip,
    make_zip_bomb_docx,
)


def test_a_real_pdf_yields_its_text():
    extracted = extract_text(make_pdf())
    assert extracted.source_format == "pdf"
    assert "Jane Doe" in extracted.text and "PostgreSQL" in extracted.text


def test_a_real_docx_yields_paragraphs_and_tables():
    extracted = extract_text(make_docx())
    assert extracted.source_format == "docx"
    assert "Jane Doe" in extracted.text and "English, German" in extracted.text


def test_text_is_sniffed_whatever_the_name_and_a_bom_is_dropped():
    extracted = extract_text("\ufeffJürgen Müller\nPython".encode())
    assert extracted == extract_text("Jürgen Müller\nPython".encode())
    assert extracted.source_format == "text" and extracted.text.startswith("Jürgen")
    assert extract_text("Ada Lovelace".encode("utf-16")).text == "Ada Lovelace"


def test_an_owner_password_only_pdf_is_readable():
    assert "Jane Doe" in extract_text(make_pdf(owner_password="owner")).text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "content must not be empty"),
        (b"x" * (MAX_CONTENT_BYTES + 1), "content must be at most 10485760 bytes"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", "content is a corrupt PDF"),
        (b"PK\x03\x04" + b"\x00" * 64, "content is a corrupt zip/DOCX file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "content is a PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32, "legacy Word"),
        (bytes(range(256)) * 4, "content is not a PDF, a DOCX or UTF-8 text"),
        (b"\x01\x02\x03\x04" * 100, "content is binary"),
        (b"   \n\t  ", "content has no extractable text"),
    ],
    ids=["empty", "too-large", "corrupt-pdf", "corrupt-zip", "png", "doc", "binary", "control", "blank"],
)
def test_bad_content_is_invalid_argument(content, message):
    with pytest.raises(InvalidArgument, match=message):
        extract_text(content)


def test_an_encrypted_pdf_is_refused():
    with pytest.raises(InvalidArgument, match="content is an encrypted PDF"):
        extract_text(make_pdf(user_password="secret"))


def test_a_pdf_without_text_asks_for_ocr():
    with pytest.raises(InvalidArgument, match="no extractable text .*OCR"):
        extract_text(make_blank_pdf())


def test_a_zip_bomb_is_refused_from_its_directory():
    bomb = make_zip_bomb_docx()
    assert len(bomb) < 1024 * 1024
    with pytest.raises(InvalidArgument, match="zip bomb"):
        extract_text(bomb)


def test_a_zip_that_is_not_a_docx_is_refused():
    with pytest.raises(InvalidArgument, match="not a DOCX"):
        extract_text(make_zip({"readme.txt": b"hello"}))
