"""The API key the server requires on /v1/, read once at startup, failing closed.

Sources: --api-key-file FILE (the whole file, surrounding whitespace stripped) or the
environment variable EDGEPIPE_API_KEY. Setting both is an error (which one would win is not
obvious to whoever set the other). A source that is set but unusable is an error too, never
a silent "no key": an empty or unreadable file, an empty variable, a key shorter than
MIN_KEY_CHARACTERS, or one with characters an HTTP header cannot carry. No source at all
means no key is required; the startup line says so, and binding beyond loopback without a key
prints a warning.
"""

from __future__ import annotations

import ipaddress
import os

ENVIRONMENT = "EDGEPIPE_API_KEY"
MIN_KEY_CHARACTERS = 16


class ApiKeyError(ValueError):
    """The configured API key cannot be used; the message names its source and the fix."""


def load_api_key(key_file: str | None, environ=os.environ) -> tuple[str, str]:
    """(key, where it came from); ("", "") when no key is configured."""
    from_environment = environ.get(ENVIRONMENT)
    if key_file and from_environment is not None:
        raise ApiKeyError(f"both --api-key-file {key_file} and the environment variable {ENVIRONMENT} "
                        "are set: set only one (unset the variable, or drop the option).")
    if key_file:
        try:
            with open(key_file, encoding="utf-8") as handle:
                key = handle.read().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ApiKeyError(f"--api-key-file {key_file} cannot be read ({error}); the server will "
                            "not start without the key it was told to require.") from None
        return _checked(key, f"--api-key-file {key_file}"), key_file
    if from_environment is not None:
        return _checked(from_environment.strip(), f"the environment variable {ENVIRONMENT}"), ENVIRONMENT
    return "", ""


def _checked(key: str, source: str) -> str:
    if not key:
        raise ApiKeyError(f"{source} is empty; the server will not start without the key it was told "
                        f"to require: put a key of at least {MIN_KEY_CHARACTERS} characters in it "
                        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))').")
    if len(key) < MIN_KEY_CHARACTERS:
        raise ApiKeyError(f"{source} holds a key of {len(key)} characters; at least "
                        f"{MIN_KEY_CHARACTERS} are required (e.g. python -c 'import secrets; "
                        "print(secrets.token_urlsafe(32))').")
    if not all(33 <= ord(character) <= 126 for character in key):
        raise ApiKeyError(f"{source} holds a key with spaces, control or non-ASCII characters, which "
                        "an HTTP header cannot carry; use printable ASCII only.")
    return key


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere
