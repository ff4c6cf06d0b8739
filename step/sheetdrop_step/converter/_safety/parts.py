"""The checks every part of a zip package goes through: the directory's declared sizes, ratios and
encryption (:func:`check_declared`), each part inflated once with bounds (:func:`inflate_entry`),
no DTD in any XML part (:func:`check_prolog`), XML parsed without entity expansion (:func:`parse_xml`),
and relationship targets resolved to part names (:func:`resolve`, :func:`rels_of`).
"""

from __future__ import annotations

import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from sheetdrop_step.converter._job import Limits
from sheetdrop_step.converter._rejection import WorkbookRejected

CHUNK = 1 << 20
#: Parts up to this declared size are inflated by the quick guard; larger ones (and the sheets) by the scan.
QUICK_ENTRY_BYTES = 1024**2
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
#: A DTD that declares something: an internal subset, an entity.
_DECLARES = re.compile(rb"<!ENTITY|<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
#: The folders of an OpenDocument's macro and dialog libraries and of its menu and toolbar settings.
LIBRARIES = ("Basic/", "Dialogs/", "Configurations2/")


def bomb_reason(name: str, size: int, compressed: int) -> str:
    return (f"part {name!r} expands from {compressed} bytes to {size} bytes ({size / max(compressed, 1):.0f}:1), "
            "the signature of a zip bomb; the file was not opened")


def check_declared(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    """What the zip directory says, before any part is inflated."""
    if len(infos) > limits.max_entries:
        raise WorkbookRejected("unsafe", f"the workbook package has {len(infos)} parts, more than a workbook ever "
                                         "needs")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_uncompressed_bytes:
        raise WorkbookRejected("too-large" if declared < 10 * limits.max_uncompressed_bytes else "unsafe",
                               f"the workbook declares {declared / 1024**2:.0f} MiB of uncompressed content, above "
                               f"the {limits.max_uncompressed_bytes / 1024**2:.0f} MiB limit")
    for info in infos:
        if info.flag_bits & 0x1:
            raise WorkbookRejected("encrypted", "the workbook's parts are encrypted; save it without a password and "
                                                "re-upload")
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_entry_ratio * max(
                info.compress_size, 1):
            raise WorkbookRejected("unsafe", bomb_reason(info.filename, info.file_size, info.compress_size))


def check_prolog(name: str, head: bytes) -> None:
    # Workbook XML never needs a DTD; refusing any DOCTYPE/ENTITY outright means entity expansion
    # cannot happen in a reader that does not defend against it. One exception, for what no reader
    # opens: OpenOffice writes an .ods's macro and dialog libraries and menu and toolbar settings
    # (Basic/, Dialogs/, Configurations2/) with a DOCTYPE naming its DTD by a public identifier; one
    # without an internal subset or an ENTITY declares nothing to expand.
    text = head.decode("utf-16", errors="ignore").encode() if head[:2] in (b"\xff\xfe", b"\xfe\xff") else head
    if _DTD.search(text) and not (name.startswith(LIBRARIES) and not _DECLARES.search(text)):
        raise WorkbookRejected("unsafe", f"part {name!r} declares a DTD or XML entities (entity-expansion attack "
                                         "pattern); the file was not opened")


def inflate_entry(fh: BinaryIO, info: zipfile.ZipInfo, limits: Limits, total_before: int,
                  sink: Callable[[bytes], None] | None, zf: zipfile.ZipFile | None = None) -> int:
    """Inflate one entry once, with bounds, feeding ``sink``; returns the bytes produced. Headers can
    lie: the ratio and total limits apply to the bytes as they come out, CRC and size are checked at
    the end, XML prologs for DTDs. Deflate is inflated from the raw stream (``zipfile`` stops at the
    declared size), so a part inflating far beyond its declared size is told apart from damage."""
    name = info.filename
    produced = crc = 0
    head = b""

    def emit(chunk: bytes) -> None:
        nonlocal produced, crc, head
        produced += len(chunk)
        if len(head) < 4096:
            head += chunk[: 4096 - len(head)]
        if produced > limits.ratio_floor_bytes and produced > limits.max_entry_ratio * max(info.compress_size, 1):
            raise WorkbookRejected("unsafe", bomb_reason(name, produced, info.compress_size))
        if produced > 2 * info.file_size + QUICK_ENTRY_BYTES:
            raise WorkbookRejected("unsafe", f"part {name!r} inflates to more than {produced} bytes although its "
                                             f"headers declare {info.file_size}: a zip bomb that lies about its size; "
                                             "the file was not opened")
        if total_before + produced > limits.max_uncompressed_bytes:
            raise WorkbookRejected("unsafe" if produced > 10 * max(info.file_size, 1) else "too-large",
                                   f"the workbook inflates to more than "
                                   f"{limits.max_uncompressed_bytes / 1024**2:.0f} MiB")
        crc = zlib.crc32(chunk, crc)
        if sink is not None:
            sink(chunk)

    def damaged(detail: object) -> WorkbookRejected:
        return WorkbookRejected("corrupt", f"part {name!r} of the workbook is damaged ({detail}); save it again and "
                                           "re-upload")

    try:
        if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            fh.seek(info.header_offset)
            local = fh.read(_LOCAL_HEADER.size)
            if len(local) != _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
                raise damaged("bad local header")
            fields = _LOCAL_HEADER.unpack(local)
            fh.seek(info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11])
            left = info.compress_size
            inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
            while left > 0 and not (inflater is not None and inflater.eof):
                raw = fh.read(min(CHUNK, left))
                if not raw:
                    raise damaged("truncated")
                left -= len(raw)
                if inflater is None:
                    emit(raw)
                    continue
                while raw and not inflater.eof:  # max_length bounds each step: 1 MiB of a bomb is 1 GiB
                    out = inflater.decompress(raw, CHUNK)
                    if out:
                        emit(out)
                    raw = inflater.unconsumed_tail
            while inflater is not None and not inflater.eof:
                out = inflater.decompress(b"", CHUNK)
                if not out:
                    raise damaged("truncated deflate stream")
                emit(out)
        else:  # rare methods (bzip2, lzma): zipfile's reader, still bounded chunk by chunk
            with (zf or zipfile.ZipFile(fh)).open(info) as stream:
                while chunk := stream.read(CHUNK):
                    emit(chunk)
    except WorkbookRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise damaged(exc) from exc
    except NotImplementedError as exc:
        raise WorkbookRejected("corrupt", f"part {name!r} uses an unsupported zip compression ({exc})") from exc
    if produced != info.file_size or crc != info.CRC:
        raise damaged("CRC or size mismatch: Bad CRC-32")
    if name.lower().endswith((".xml", ".rels", ".vml")):
        check_prolog(name, head)
    return produced


def open_entry(path: Any, info: zipfile.ZipInfo) -> zipfile.ZipExtFile:
    """One entry opened for reading from its local header, without reading the zip's directory again
    (``ZipFile`` parses all of it: a workbook of 1,024 sheets read its directory 2,000 times)."""
    fh = open(path, "rb")  # noqa: SIM115 - closed with the entry
    try:
        fh.seek(info.header_offset)
        local = fh.read(_LOCAL_HEADER.size)
        if len(local) != _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
        fields = _LOCAL_HEADER.unpack(local)
        fh.seek(info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11])
        return zipfile.ZipExtFile(fh, "r", info, None, True)
    except BaseException:
        fh.close()
        raise


def parse_xml(name: str, data: bytes) -> Any:
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    check_prolog(name, data[:4096])
    try:
        return DET.fromstring(data)
    except DefusedXmlException as exc:
        raise WorkbookRejected("unsafe", f"part {name!r} uses XML entities or DTDs "
                                         f"({exc.__class__.__name__})") from exc
    except Exception as exc:  # ParseError and friends
        raise WorkbookRejected("corrupt", f"part {name!r} of the workbook is not valid XML ({exc})") from exc


def rels_of(part: str) -> str:
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def resolve(base_part: str, target: str) -> str:
    """A relationship target as a zip entry name: absolute, or relative to the source part's folder."""
    target = target.replace("\\", "/")
    joined = target.lstrip("/") if target.startswith("/") else posixpath.join(posixpath.dirname(base_part), target)
    return posixpath.normpath(joined).lstrip("/")
