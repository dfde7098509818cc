"""Keep secrets out of messages: passwords, keys, tokens, card numbers and IBANs.

Every message Reversa prints, logs or stores passes a database URL through
:func:`mask_url` and free text (exception messages above all) through
:func:`scrub`, so a password given on the command line
(``postgresql://u:secret@host/db``), a private key quoted by a library, a
bearer token echoed by an HTTP client, or a card number or IBAN inside a
vendor's error never comes back in an error, a log line, the store or an export.

What :func:`scrub` removes:

- passwords in URLs and ``password=`` / ``secret=`` / ``token=`` / ``api_key=`` pairs;
- PEM private key blocks, and values after ``private key``, ``secret``, ``seed``,
  ``mnemonic`` labels;
- hexadecimal secrets: 64 or more hex digits (an Ethereum or Ed25519 private
  key), unless the word just before names it a public identifier (``tx``,
  ``hash``, ``block``, ``address``...);
- ``Bearer`` / ``Basic`` credentials;
- card numbers: 13 to 19 digits (spaces or dashes allowed) passing the Luhn
  check, kept as ``[card ****1234]``;
- IBANs passing the ISO 13616 mod-97 check, kept as ``[IBAN GB** ****1234]``.
"""

from __future__ import annotations

import re

__all__ = ["mask_url", "scrub"]

MASK = "***"

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@/]*)@")
# key=value pairs that libpq and many clients echo back (password=..., sslpassword=...)
_KV_PASSWORD = re.compile(
    r"(?i)\b(?P<key>\w*password|secret|token|api_key|apikey|access_key)=(?P<value>[^\s&;'\"]+)")
_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9 ]+ )?"
                  r"PRIVATE KEY-----|$)", re.DOTALL)
_PEM_OTHER = re.compile(r"-----BEGIN REVERSA HMAC KEY-----.*?(?:-----END REVERSA HMAC "
                        r"KEY-----|$)", re.DOTALL)
_LABELLED = re.compile(
    r"(?i)\b(?P<key>private[ _-]?key|secret[ _-]?key|signing[ _-]?key|seed(?: phrase)?|"
    r"mnemonic|passphrase)(?P<sep>\s*[:=]\s*|\s+)(?P<value>['\"]?[^\s'\",;]{8,}['\"]?)")
_HEX = re.compile(r"(?<![0-9A-Za-z])(?:0x)?[0-9a-fA-F]{64,}(?![0-9A-Za-z])")
_PUBLIC_HEX = re.compile(r"(?i)(?:\btx|\btxn|transaction|\bhash|digest|\bblock|address|"
                         r"\broot|\bhead|\bplan|contract|\bid)\W{0,3}\w{0,12}\W{0,3}$")
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?P<value>[A-Za-z0-9\-._~+/]{8,}=*)")
_DIGITS = re.compile(r"(?<![\dA-Za-z])\d(?:[ -]?\d){12,18}(?![\dA-Za-z])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")


def mask_url(url: str) -> str:
    """A database URL with its password replaced by ``***`` (no-op without one)."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", url)


def scrub(text: str) -> str:
    """``text`` without passwords, keys, tokens, card numbers or IBANs (see the module doc)."""
    text = mask_url(text)
    text = _PEM.sub("[private key]", text)
    text = _PEM_OTHER.sub("[private key]", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m.group('key')}={MASK}", text)
    text = _LABELLED.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group('scheme')} {MASK}", text)
    text = _HEX.sub(_hex, text)
    text = _IBAN.sub(_iban, text)
    return _DIGITS.sub(_card, text)


def _hex(m: re.Match[str]) -> str:
    before = m.string[max(0, m.start() - 40):m.start()]
    if _PUBLIC_HEX.search(before):
        return m.group(0)
    return "[hex secret]"


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    if not 13 <= len(digits) <= 19 or not _luhn(digits):
        return m.group(0)
    return f"[card ****{digits[-4:]}]"


def _iban(m: re.Match[str]) -> str:
    compact = m.group(0).replace(" ", "")
    if not 15 <= len(compact) <= 34 or not _mod97(compact):
        return m.group(0)
    return f"[IBAN {compact[:2]}** ****{compact[-4:]}]"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mod97(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    try:
        number = "".join(str(int(ch, 36)) for ch in moved)
    except ValueError:
        return False
    return int(number) % 97 == 1
