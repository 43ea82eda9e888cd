"""CV files made for tests: a real PDF (reportlab), a real DOCX (python-docx), and hostile variants."""

from __future__ import annotations

import io
import zipfile

CV_LINES = [
    "Jane Doe",
    "Senior Backend Engineer - Berlin, Germany",
    "jane.doe@example.com | +49 30 1234567",
    "Experience: Acme GmbH, Staff Engineer, 2019-03 to present. Built billing pipelines in Python.",
    "Education: TU Berlin, M.Sc. Computer Science, 2012-2014",
    "Skills: Python, PostgreSQL, gRPC, Kubernetes",
]


def make_pdf(lines=CV_LINES, *, user_password: str | None = None, owner_password: str | None = None) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4)
    y = 800
    for line in lines:
        page.drawString(72, y, line)
        y -= 18
    page.showPage()
    page.save()
    data = buffer.getvalue()
    if user_password is None and owner_password is None:
        return data
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password or "", owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(lines=CV_LINES) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(lines[0], level=1)
    for line in lines[1:]:
        document.add_paragraph(line)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Languages"
    table.rows[0].cells[1].text = "English, German"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip_bomb_docx(expanded_bytes: int = 80 * 1024 * 1024) -> bytes:
    """A DOCX-shaped zip whose document.xml inflates to expanded_bytes of zeros (a few dozen KiB on disk)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = bytes(1024 * 1024)
            for _ in range(expanded_bytes // len(chunk)):
                member.write(chunk)
    return buffer.getvalue()


def make_zip(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_blank_pdf() -> bytes:
    return make_pdf([])
