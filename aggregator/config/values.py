"""Parsers for the config's value syntaxes: durations, byte sizes, type expressions, ${ENV}, URLs, names.

Each parser takes one raw YAML value and returns the typed value, or raises ``Invalid`` with a message
that says what is wrong and what would be right. They know nothing about files or lines; the reader
(``tree.Reader``) attaches those.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from urllib.parse import urlsplit

from aggregator.config.models import TypeExpr

__all__ = [
    "CONNECTION_HEADERS",
    "Invalid",
    "boolean",
    "byte_size",
    "choice",
    "cookie_name",
    "describe",
    "did_you_mean",
    "duration",
    "header_name",
    "header_value",
    "http_url",
    "integer",
    "is_name",
    "name",
    "non_empty_string",
    "number",
    "optional_duration",
    "string",
    "substitute_env",
    "type_expr",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_TYPE_HINT = (
    'write a type name like String or User, a list like [String], and ! for non-null, e.g. "[User!]!"'
)


class Invalid(Exception):
    """A value was refused; the message says what is wrong and how to fix it."""


def is_name(text: str) -> bool:
    """True for a valid GraphQL name: ``[A-Za-z_][A-Za-z0-9_]*``."""
    return _NAME.fullmatch(text) is not None


def describe(value: object) -> str:
    """How a refused value is named in a message: its kind, and a short excerpt of strings."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        excerpt = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {excerpt!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a YAML {type(value).__name__} value"


def did_you_mean(word: str, options: Collection[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or an empty string when none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def string(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {describe(value)} (quote it if it is meant as text)")
    return value


def non_empty_string(value: object) -> str:
    text = string(value)
    if not text.strip():
        raise Invalid("must not be empty")
    return text


def name(value: object) -> str:
    text = string(value)
    if not is_name(text):
        raise Invalid(
            f"{text!r} is not a valid GraphQL name: use letters, digits and _, not starting with a digit"
        )
    return text


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {describe(value)}")
    return value


def choice(*options: str) -> Callable[[object], str]:
    """A parser accepting exactly one of ``options``."""

    def parse(value: object) -> str:
        if isinstance(value, str) and value in options:
            return value
        shown = value if isinstance(value, str) else describe(value)
        hint = did_you_mean(value, options) if isinstance(value, str) else ""
        raise Invalid(f"must be one of {', '.join(options)}; got {shown!r}{hint}")

    return parse


def integer(minimum: int) -> Callable[[object], int]:
    """A parser for whole numbers of at least ``minimum``."""

    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be a whole number (at least {minimum}), got {describe(value)}")
        if value < minimum:
            raise Invalid(f"must be at least {minimum}, got {value}")
        return value

    return parse


def number(
    *, above: float | None = None, at_least: float | None = None, at_most: float | None = None
) -> Callable[[object], float]:
    """A parser for real numbers in a range; ``above`` is exclusive, the others inclusive."""
    bounds = [f"greater than {above}" if above is not None else ""]
    bounds.append(f"at least {at_least}" if at_least is not None else "")
    bounds.append(f"at most {at_most}" if at_most is not None else "")
    wanted = " and ".join(b for b in bounds if b)

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be a number ({wanted}), got {describe(value)}")
        result = float(value)
        in_range = (
            math.isfinite(result)
            and (above is None or result > above)
            and (at_least is None or result >= at_least)
            and (at_most is None or result <= at_most)
        )
        if not in_range:
            raise Invalid(f"must be {wanted}, got {value}")
        return result

    return parse


def duration(value: object) -> float:
    """Seconds from ``"250ms"``, ``"2s"``, ``"1m"``, ``"1h"`` or a bare number of seconds; always > 0."""
    hint = 'write it like "250ms", "2s", "1m", "1h", or a number of seconds'
    if isinstance(value, bool):
        raise Invalid(f"is not a duration ({describe(value)}); {hint}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise Invalid(f"is not a duration ({describe(value)}); {hint}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise Invalid(f"must be a duration greater than zero, got {value!r}; {hint}")
    return seconds


def optional_duration(value: object) -> float | None:
    """A duration, or ``null`` for none at all."""
    return None if value is None else duration(value)


def byte_size(value: object) -> int:
    """Bytes from an integer or ``"512KiB"``, ``"1MiB"``, ``"10MB"``...; always > 0."""
    hint = 'write a number of bytes or a size like "512KiB", "1MiB", "10MB"'
    if isinstance(value, bool):
        raise Invalid(f"is not a size ({describe(value)}); {hint}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise Invalid(f"is not a size ({describe(value)}); {hint}")
    if size <= 0:
        raise Invalid(f"must be greater than zero, got {value!r}; {hint}")
    return size


def type_expr(value: object) -> TypeExpr:
    """A GraphQL type expression: ``String``, ``[User!]``, ``[[Int]!]!``."""
    text = string(value)
    compact = "".join(text.split())
    try:
        expr, end = _parse_type(compact, 0)
    except IndexError:
        raise Invalid(f"bad type expression {text!r}: it ends too early; {_TYPE_HINT}") from None
    if end != len(compact):
        raise Invalid(f"bad type expression {text!r}: unexpected {compact[end:]!r}; {_TYPE_HINT}")
    return expr


def _parse_type(text: str, pos: int) -> tuple[TypeExpr, int]:
    if text[pos] == "[":
        inner, pos = _parse_type(text, pos + 1)
        if text[pos] != "]":
            raise Invalid(f"bad type expression {text!r}: expected ']' at {text[pos:]!r}; {_TYPE_HINT}")
        expr, pos = TypeExpr(of=inner), pos + 1
    else:
        match = _NAME.match(text, pos)
        if match is None:
            raise Invalid(
                f"bad type expression {text!r}: expected a type name at {text[pos:]!r}; {_TYPE_HINT}"
            )
        expr, pos = TypeExpr(name=match.group()), match.end()
    if pos < len(text) and text[pos] == "!":
        return TypeExpr(name=expr.name, of=expr.of, non_null=True), pos + 1
    return expr, pos


def substitute_env(text: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Replace ``${VAR}`` and ``${VAR:-default}``; return the text and the values put in.

    As in the shell, ``:-`` also replaces a variable that is set but empty.
    """
    used: list[str] = []
    missing: list[str] = []
    malformed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        var, sep, default = match.group(1).partition(":-")
        if not is_name(var):
            malformed.append(match.group(0))
            return ""
        value = env.get(var)
        if value is None or (sep and not value):
            if not sep:
                missing.append(var)
                return ""
            value = default
        used.append(value)
        return value

    result = _ENV_REF.sub(replace, text)
    if malformed:
        raise Invalid(
            f"bad environment reference {malformed[0]!r}: write ${{NAME}} or ${{NAME:-default}}, "
            "NAME being letters, digits and _"
        )
    if "${" in _ENV_REF.sub("", text):
        raise Invalid("has a '${' with no closing '}': write ${NAME} or ${NAME:-default}")
    if missing:
        names = ", ".join(missing)
        raise Invalid(
            f"environment variable {names} is not set; set it, or give a default: ${{{missing[0]}:-value}}"
        )
    return result, tuple(used)


def http_url(value: object) -> str:
    """An absolute http(s) URL with a host and no credentials, query or fragment.

    Messages never echo the URL: it may carry credentials.
    """
    text = non_empty_string(value)
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise Invalid("must be a URL without spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise Invalid(f"is not a valid URL ({exc}); write it like http://host:8080/api") from None
    if parts.scheme not in ("http", "https"):
        got = f"'{parts.scheme}://'" if parts.scheme else "no scheme"
        raise Invalid(f"must be an http:// or https:// URL (got {got}); write it like http://host:8080/api")
    if not parts.hostname:
        raise Invalid("has no host; write it like http://host:8080/api")
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not contain credentials (user:password@); put them in auth:")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise Invalid("must not have a query (?...) or fragment (#...); send query values as params")
    if port == 0:
        raise Invalid("has port 0; use the upstream's real port")
    return text


# Headers that describe the connection, not the request: set by the HTTP client, never by config,
# params or forwarding (a `Host` param could otherwise send the call to another virtual host).
CONNECTION_HEADERS: frozenset[str] = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
)


def header_name(value: object) -> str:
    text = string(value)
    if _HEADER_NAME.fullmatch(text) is None:
        raise Invalid(f"{text!r} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
    if text.lower() in CONNECTION_HEADERS:
        raise Invalid(
            f"{text!r} is set by the HTTP client for each connection; it cannot be configured or sent"
        )
    return text


def cookie_name(value: object) -> str:
    """A cookie's name: an HTTP token, as RFC 6265 requires."""
    text = string(value)
    if _HEADER_NAME.fullmatch(text) is None:
        raise Invalid(f"{text!r} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)")
    return text


def header_value(value: object) -> str:
    """A header value; line breaks are refused because they would inject extra headers."""
    text = string(value)
    if any(ch in text for ch in "\r\n\0"):
        raise Invalid("must not contain line breaks or NUL characters")
    return text
