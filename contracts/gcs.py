"""How edgepipe reaches gs:// through gcsfs: one file system per process, with the options a
store that other processes write needs, and credentials found up front.

With STORAGE_EMULATOR_HOST set (a GCS emulator on loopback), access is anonymous, which an
emulator wants; otherwise Google's Application Default Credentials are looked up first, so
that missing credentials are a clear StorageError here instead of gcsfs quietly falling back
to anonymous access and failing later with a 401.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.parse
from typing import Any

CREDENTIALS_HELP = (
    "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth "
    "application-default login`, or run on a Google Cloud VM or job whose service account may "
    "use the bucket; for a local GCS emulator set STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT")


@functools.lru_cache(maxsize=4)
def filesystem(emulator: str):
    """One gcsfs file system per process (per emulator address)."""
    if emulator:
        # gcsfs >= 2025 first asks the Storage Control gRPC API for the bucket's layout; an
        # emulator has none, and each call would wait 60 s before falling back.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs

    options: dict[str, Any] = {"use_listings_cache": False}  # other processes write the store
    if emulator:
        options["token"] = "anon"
    else:
        options["token"] = _google_credentials()
    return gcsfs.GCSFileSystem(**options)


def _google_credentials():
    """Application Default Credentials, or StorageError saying how to provide them (gcsfs
    would otherwise fall back to anonymous access, which fails later and less clearly)."""
    import google.auth
    from google.auth import exceptions

    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
    except exceptions.DefaultCredentialsError as error:
        from edgepipe.contracts.storage import StorageError

        raise StorageError(f"no Google credentials found ({error}); {CREDENTIALS_HELP}.") from None
    return credentials


def endpoint() -> tuple[str, int]:
    """(host, port) gs:// requests go to: the emulator's, or Google's JSON API."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if not emulator:
        return "storage.googleapis.com", 443
    parsed = urllib.parse.urlsplit(emulator if "://" in emulator else f"http://{emulator}")
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "https" else 80)


def probe(timeout: float = 10.0) -> None:
    """Open (and close) one TCP connection to the endpoint: OSError at once when nothing
    answers there, instead of gcsfs's retries with back-off (about a minute)."""
    if not os.environ.get("STORAGE_EMULATOR_HOST") and any(
            os.environ.get(name) for name in ("https_proxy", "HTTPS_PROXY")):
        return  # through a proxy: a direct connection proves nothing
    host, port = endpoint()
    socket.create_connection((host, port), timeout=timeout).close()

