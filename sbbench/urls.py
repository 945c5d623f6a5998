"""Passwords never leave a URL: `mask_url` is applied wherever a storage or tracking URL (or a
message that may hold one) is printed, logged, tagged or stored."""

from __future__ import annotations

import re

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*):[^\s/]*@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&](password|pwd)=)[^&\s]*", re.IGNORECASE)


def mask_url(text: str | None) -> str:
    """`text` (a URL, or a message holding URLs) with every password replaced by ***."""
    if not text:
        return text or ""
    text = _PASSWORD_IN_URL.sub(r"\g<head>:***@", text)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", text)
