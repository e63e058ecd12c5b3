"""The pool management endpoint: validation, and joining API paths onto it without losing its base path."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from smoke.errors import ConfigurationError

HTTPS = "https"
HTTP = "http"
DEFAULT_PORTS: dict[str, int] = {HTTPS: 443, HTTP: 80}
# The local pool listens on loopback over plain HTTP; every other host must use HTTPS.
LOCALHOST_NAME = "localhost"
ENDPOINT_SHAPES = (
    "https://<region>.dynamicsessions.io/subscriptions/<sub>/resourceGroups/<rg>/sessionPools/<name> or "
    "https://<pool>.<env-id>.<region>.azurecontainerapps.io"
)


MIN_PORT = 1
MAX_PORT = 65535
# A DNS name: labels of 1-63 letters, digits, hyphens (and underscores), 253 characters at most.
MAX_HOST_CHARS = 253
_DNS_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# "scheme://anything-without-a-slash@": a user name or password before the host.
_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#]*@", re.IGNORECASE)


def _without_query(text: str) -> str:
    """``text`` without its query string and fragment, which may hold a key and are never echoed."""
    return re.split(r"[?#]", text, maxsplit=1)[0]


def _is_valid_host(host: str, *, bracketed: bool) -> bool:
    """True for an IP address (IPv6 only in brackets) or a DNS name made of valid labels."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if bracketed or address is not None:
        return address is not None and (address.version == 6) == bracketed
    name = host.removesuffix(".")
    return 0 < len(name) <= MAX_HOST_CHARS and all(_DNS_LABEL.fullmatch(label) for label in name.split("."))


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host.lower() == LOCALHOST_NAME:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def encode_query(params: dict[str, str]) -> str:
    """Percent-encode query parameters; identifiers may hold ``& # % ;`` and friends, so nothing is safe."""
    return urlencode(params, quote_via=quote, safe="")


class PoolEndpoint(NamedTuple):
    """A validated pool management endpoint: scheme, host[:port] and a base path without trailing slash."""

    scheme: str
    netloc: str
    base_path: str

    @classmethod
    def parse(cls, url: str) -> PoolEndpoint:
        """Validate ``url`` and split it; raise ConfigurationError with a sentence saying what to fix.

        Refused: anything but an absolute https:// URL (http:// only for loopback hosts), user names or
        passwords (never echoed), a query string or fragment (not echoed either: they may hold a key),
        whitespace or control characters, a host that is not a DNS name or IP address, a port outside
        1-65535.
        """
        text = url.strip()
        if not text:
            raise ConfigurationError(f"The pool management endpoint is empty; expected {ENDPOINT_SHAPES}.")
        if _USERINFO.match(text):
            # Checked first, on the raw text, so that no later message can echo a password.
            raise ConfigurationError(
                "The pool management endpoint must not contain a user name or password (not shown here); the "
                "smoke check authenticates with a bearer token. Remove the 'user:password@' part."
            )
        shown = _without_query(text)
        if any(not character.isprintable() or character.isspace() for character in text):
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} contains whitespace or control characters; "
                f"pass the URL exactly, e.g. {ENDPOINT_SHAPES}."
            )
        try:
            parts = urlsplit(text)
            host = parts.hostname
            port = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as error:
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} is not a valid URL ({error}); expected {ENDPOINT_SHAPES}."
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not host:
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} is not an absolute https:// URL; expected {ENDPOINT_SHAPES}."
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} has a query string or fragment (not shown here), which "
                f"would be lost; pass the bare endpoint (the stack output poolManagementEndpoint), e.g. "
                f"{ENDPOINT_SHAPES}."
            )
        host = host.lower()
        if not _is_valid_host(host, bracketed=parts.netloc.rpartition("@")[2].startswith("[")):
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} has the host {host!r}, which is not a valid DNS name "
                f"or IP address; expected {ENDPOINT_SHAPES}."
            )
        if port is not None and not MIN_PORT <= port <= MAX_PORT:
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} has port {port}, outside {MIN_PORT}-{MAX_PORT}; "
                "omit the port for https (443)."
            )
        if scheme == HTTP and not is_loopback_host(host):
            raise ConfigurationError(
                f"The pool management endpoint {shown!r} uses plain http; the bearer token may only travel over "
                "https (http is allowed for loopback hosts only: 127.0.0.1, localhost, [::1]). Use the https URL."
            )
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != DEFAULT_PORTS[scheme]:
            netloc += f":{port}"
        return cls(scheme=scheme, netloc=netloc, base_path=parts.path.rstrip("/"))

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` without any path."""
        return f"{self.scheme}://{self.netloc}"

    @property
    def url(self) -> str:
        """The normalised endpoint URL (no trailing slash)."""
        return self.origin + self.base_path

    def join(self, path: str, params: dict[str, str]) -> str:
        """Append an API ``path`` (``/code/execute``) to the base path and add the encoded query."""
        return f"{self.url}/{path.lstrip('/')}?{encode_query(params)}"

    def same_origin(self, url: str) -> bool:
        """True when ``url`` has this endpoint's scheme, host and (effective) port: safe to send the token."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        scheme = parts.scheme.lower()
        if scheme != self.scheme or not parts.hostname:
            return False
        own = urlsplit(self.origin)
        return (parts.hostname.lower(), port or DEFAULT_PORTS.get(scheme)) == (
            own.hostname,
            own.port or DEFAULT_PORTS[self.scheme],
        )

    def resolve_location(self, location: str, required_params: dict[str, str]) -> str | None:
        """Turn an ``Operation-Location`` header into a URL to poll, or None when it points elsewhere or is no URL.

        A relative location is joined below the base path (unless it already starts with it); an
        absolute one is followed only on this endpoint's origin, so the token never leaves it.
        Query parameters in ``required_params`` that the location lacks are added.
        """
        try:
            parts = urlsplit(location.strip())
        except ValueError:  # e.g. "http://[::1": not a URL at all
            return None
        if parts.scheme or parts.netloc:
            if not self.same_origin(location.strip()):
                return None
            base = f"{parts.scheme.lower()}://{parts.netloc}{parts.path}"
        else:
            path = parts.path if parts.path.startswith("/") else "/" + parts.path
            already_below_base = self.base_path and (path == self.base_path or path.startswith(self.base_path + "/"))
            base = self.origin + (path if already_below_base else self.base_path + path)
        present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        missing = {name: value for name, value in required_params.items() if name not in present}
        query = "&".join(piece for piece in (parts.query, encode_query(missing) if missing else "") if piece)
        return f"{base}?{query}" if query else base
