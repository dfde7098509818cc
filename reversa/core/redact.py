"""Keep secrets out of messages: passwords in URLs, and other credentials in text.

Every message Reversa prints, logs or stores passes a database URL through
:func:`mask_url` and free text from libraries through :func:`scrub`, so a
password given on the command line (``postgresql://u:secret@host/db``) never
comes back in an error, a log line or JSON output.
"""

from __future__ import annotations

import re

__all__ = ["mask_url", "scrub"]

MASK = "***"

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@/]*)@")
# key=value pairs that libpq and many clients echo back (password=..., sslpassword=...)
_KV_PASSWORD = re.compile(r"(?i)\b(?P<key>\w*password|secret|token|api_key)=(?P<value>[^\s&;'\"]+)")


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***`` (no-op without one)."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", url)


def scrub(text: str) -> str:
    """Remove passwords from URLs and ``password=...`` pairs anywhere in ``text``."""
    text = mask_url(text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group('key')}={MASK}", text)
