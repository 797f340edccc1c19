"""A file's MIME type from its name, as DSpace's bitstream format registry gives it.

DSpace guesses a bitstream's format from its name's extension (BitstreamFormatService
.guessFormat, extensions compared without regard to case) in its format registry, and
shows that format's MIME type (oai_dc's `dc:format`, oai_openaire's `mimeType`). The
table below is DSpace's default registry (dspace/config/registries/bitstream-formats.xml:
each extension and the MIME type of the first format listing it). An extension it does
not know takes the type Python's built-in table gives (`mimetypes`, without the system's
files, so every machine answers alike: a DSpace installation may have registered more
formats, and a known type says more than none), and else DSpace's "Unknown" format's,
application/octet-stream.
"""

from __future__ import annotations

import mimetypes

UNKNOWN = "application/octet-stream"
_BUILT_IN = mimetypes.MimeTypes(filenames=())

DSPACE_REGISTRY: dict[str, str] = {
    "abs": "audio/x-mpeg",
    "ai": "application/postscript",
    "aif": "audio/x-aiff",
    "aifc": "audio/x-aiff",
    "aiff": "audio/x-aiff",
    "asc": "text/plain",
    "au": "audio/basic",
    "avif": "image/avif",
    "bmp": "image/x-ms-bmp",
    "css": "text/css",
    "csv": "text/csv",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "dvi": "application/x-dvi",
    "eps": "application/postscript",
    "epub": "application/epub+zip",
    "fm": "application/x-filemaker",
    "gif": "image/gif",
    "htm": "text/html",
    "html": "text/html",
    "jfif": "image/jpeg",
    "jp2": "image/jp2",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "js": "text/javascript",
    "latex": "application/x-latex",
    "ma": "application/mathematica",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
    "mpa": "audio/x-mpeg",
    "mpd": "application/vnd.ms-project",
    "mpe": "video/mpeg",
    "mpeg": "video/mpeg",
    "mpega": "audio/x-mpeg",
    "mpg": "video/mpeg",
    "mpp": "application/vnd.ms-project",
    "mpx": "application/vnd.ms-project",
    "odb": "application/vnd.oasis.opendocument.database",
    "odc": "application/vnd.oasis.opendocument.chart",
    "odf": "application/vnd.oasis.opendocument.formula",
    "odg": "application/vnd.oasis.opendocument.graphics",
    "odi": "application/vnd.oasis.opendocument.image",
    "odm": "application/vnd.oasis.opendocument.text-master",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odt": "application/vnd.oasis.opendocument.text",
    "ogg": "video/ogg",
    "otg": "application/vnd.oasis.opendocument.graphics-template",
    "oth": "application/vnd.oasis.opendocument.text-web",
    "otp": "application/vnd.oasis.opendocument.presentation-template",
    "ots": "application/vnd.oasis.opendocument.spreadsheet-template",
    "ott": "application/vnd.oasis.opendocument.text-template",
    "oxt": "application/vnd.openofficeorg.extension",
    "pcd": "image/x-photo-cd",
    "pdd": "application/x-photoshop",
    "pdf": "application/pdf",
    "png": "image/png",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "ps": "application/postscript",
    "psd": "application/x-photoshop",
    "qt": "video/quicktime",
    "ra": "audio/x-pn-realaudio",
    "ram": "audio/x-pn-realaudio",
    "rdf": "application/rdf+xml; charset=utf-8",
    "rtf": "text/richtext",
    "sda": "application/vnd.stardivision.draw",
    "sdc": "application/vnd.stardivision.calc",
    "sdd": "application/vnd.stardivision.impress",
    "sdm": "application/vnd.stardivision.mail",
    "sdp": "application/vnd.stardivision.impress-packed",
    "sds": "application/vnd.stardivision.chart",
    "sdw": "application/vnd.stardivision.writer",
    "sgl": "application/vnd.stardivision.writer-global",
    "sgm": "application/sgml",
    "sgml": "application/sgml",
    "smf": "application/vnd.stardivision.math",
    "snd": "audio/basic",
    "stc": "application/vnd.sun.xml.calc.template",
    "std": "application/vnd.sun.xml.draw.template",
    "sti": "application/vnd.sun.xml.impress.template",
    "stw": "application/vnd.sun.xml.writer.template",
    "sxc": "application/vnd.sun.xml.calc",
    "sxd": "application/vnd.sun.xml.draw",
    "sxg": "application/vnd.sun.xml.writer.global",
    "sxi": "application/vnd.sun.xml.impress",
    "sxm": "application/vnd.sun.xml.math",
    "sxw": "application/vnd.sun.xml.writer",
    "tex": "application/x-tex",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "txt": "text/plain",
    "vsd": "application/vnd.visio",
    "vtt": "text/vtt",
    "wav": "audio/x-wav",
    "webm": "video/webm",
    "webp": "image/webp",
    "wpd": "application/wordperfect5.1",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xml": "text/xml",
}


def mime_type(name: str) -> str:
    """The MIME type of a file called `name` (its last path part's extension decides)."""
    base = name.rsplit("/", 1)[-1]
    extension = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    if not extension:
        return UNKNOWN
    known = DSPACE_REGISTRY.get(extension)
    if known is not None:
        return known
    guessed, _ = _BUILT_IN.guess_type("file." + extension, strict=False)
    return guessed or UNKNOWN
