"""Keep every page of the book free of assets that reach for the network.

Jupyter Book 1 always loads sphinx-thebe, which adds two inline scripts and a
stylesheet to every page even when Thebe is switched off (`launch_buttons.thebe:
false`). The inline script names a remote URL (the Thebe bundle on a CDN) and
is added twice, so each page also raises "Identifier 'THEBE_JS_URL' has already
been declared". The book has no live-code buttons, so these assets are removed
from every page before it is written.
"""

from __future__ import annotations


def _is_thebe(asset) -> bool:
    filename = str(getattr(asset, "filename", asset) or "")
    attributes = getattr(asset, "attributes", {}) or {}
    body = str(attributes.get("body", ""))
    return "thebe" in filename.lower() or "THEBE_JS_URL" in body


def _strip_thebe(app, pagename, templatename, context, doctree):
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not _is_thebe(a)]


def setup(app):
    # Run after the theme and the other extensions have filled the context.
    app.connect("html-page-context", _strip_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
