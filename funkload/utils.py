"""Import shim: ``from funkload.utils import Data, extract_token, ...``."""

from marteau.funkload.utils import (
    Data,
    extract_token,
    get_version,
    is_html,
    trace,
    truncate,
    xmlrpc_get_credential,
    xmlrpc_get_seq,
    xmlrpc_list_credentials,
    xmlrpc_list_groups,
)

__all__ = [
    "Data",
    "extract_token",
    "get_version",
    "is_html",
    "trace",
    "truncate",
    "xmlrpc_get_credential",
    "xmlrpc_get_seq",
    "xmlrpc_list_credentials",
    "xmlrpc_list_groups",
]
