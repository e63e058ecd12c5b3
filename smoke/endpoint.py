"""The pool management endpoint: checks that catch a real mistake with one sentence, and URLs below it."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from smoke.settings import ConfigurationError

DEFAULT_PORTS: dict[str, int] = {"https": 443, "http": 80}
ENDPOINT_SHAPES = (
    "https://<region>.dynamicsessions.io/subscriptions/<sub>/resourceGroups/<rg>/sessionPools/<name> or "
    "https://<pool>.<env-id>.<region>.azurecontainerapps.io"
)
# A DNS name: dot-separated labels of letters, digits, hyphens and underscores, no hyphen at either end.
_DNS_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?")
# "scheme://anything-without-a-slash@": a user name or password before the host.
_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#]*@", re.IGNORECASE)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
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
        """Validate ``url`` and split it; ConfigurationError with a sentence saying what to fix.

        Only https:// (http:// for loopback hosts: the local pool). A user name, password, query or
        fragment is refused and never echoed: they may hold a secret.
        """
        text = url.strip()

        def refuse(problem: str, fix: str = f"expected {ENDPOINT_SHAPES}") -> ConfigurationError:
            shown = re.split(r"[?#]", text, maxsplit=1)[0]
            return ConfigurationError(f"The pool management endpoint {shown!r} {problem}; {fix}.")

        if _USERINFO.match(text):  # checked first, on the raw text, so that no message can echo a password
            raise ConfigurationError(
                "The pool management endpoint must not contain a user name or password (not shown here); the "
                "smoke check authenticates with a bearer token. Remove the 'user:password@' part."
            )
        if not text or any(not character.isprintable() or character.isspace() for character in text):
            raise refuse(
                "is empty or contains whitespace or control characters", f"pass the URL, e.g. {ENDPOINT_SHAPES}"
            )
        try:
            parts = urlsplit(text)
            host, port = (parts.hostname or "").lower(), parts.port
        except ValueError as error:  # a port that is no number in range, an unclosed [
            raise refuse(f"is not a valid URL ({error})") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not host:
            raise refuse("is not an absolute https:// URL")
        if parts.query or parts.fragment:
            raise refuse(
                "has a query string or fragment (not shown here), which would be lost",
                f"pass the bare endpoint (the stack output poolManagementEndpoint), e.g. {ENDPOINT_SHAPES}",
            )
        bracketed = parts.netloc.rpartition("@")[2].startswith("[")
        try:
            valid_host = (ipaddress.ip_address(host).version == 6) == bracketed
        except ValueError:
            valid_host = not bracketed and len(host) <= 253 and _DNS_NAME.fullmatch(host) is not None
        if not valid_host:
            raise refuse(f"has the host {host!r}, which is not a valid DNS name or IP address")
        if port == 0:
            raise refuse("has port 0, outside 1-65535", "omit the port for https (443)")
        if scheme == "http" and not is_loopback_host(host):
            raise refuse(
                "uses plain http; the bearer token may only travel over https (http is allowed for loopback hosts "
                "only: 127.0.0.1, localhost, [::1])",
                "use the https URL",
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

    def resolve_location(self, location: str, required_params: dict[str, str]) -> str | None:
        """An ``Operation-Location`` as a URL to poll, or None when it is no URL or points elsewhere.

        A relative location goes below the base path (unless it already starts with it); an absolute
        one is followed only on this endpoint's origin, so the token never leaves it. Query
        parameters in ``required_params`` that the location lacks are added.
        """
        try:
            parts = urlsplit(location.strip())
            own = urlsplit(self.origin)
            if parts.scheme or parts.netloc:
                same = (parts.scheme.lower(), parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower()))
                if same != (own.scheme, own.hostname, own.port or DEFAULT_PORTS[own.scheme]):
                    return None
        except ValueError:  # e.g. "http://[::1": not a URL at all
            return None
        path = "/" + parts.path.lstrip("/")
        below_base = path == self.base_path or path.startswith(self.base_path + "/")
        if not (parts.netloc or below_base):
            path = self.base_path + path
        present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        missing = {name: value for name, value in required_params.items() if name not in present}
        query = "&".join(piece for piece in (parts.query, encode_query(missing) if missing else "") if piece)
        base = f"{parts.scheme}://{parts.netloc}" if parts.netloc else self.origin
        return base + path + (f"?{query}" if query else "")
