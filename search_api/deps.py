"""Shared dependencies and the Chroma-call guard."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

from chromadb.errors import InvalidArgumentError, InvalidDimensionException, NotFoundError
from fastapi import Depends

from search_api.chroma import ChromaUnavailable
from search_api.filters import UnknownCurrency
from search_api.services import Services, get_services

log = logging.getLogger(__name__)
T = TypeVar("T")

ServicesDep = Annotated[Services, Depends(get_services)]


def with_collection(services: Services, call: Callable[[object], T]) -> T:
    """Run ``call(collection)``; a connection-level failure drops the client and becomes a 503.

    A collection swapped in under the same name (``rebuild --from staging``) makes the held
    handle "not found": the handle is reopened by name and the call tried once more."""
    collection = services.chroma.collection()
    try:
        return call(collection)
    except UnknownCurrency:
        raise  # the request's fault: a 422
    except (InvalidArgumentError, InvalidDimensionException, TypeError):
        raise  # our bug, not an outage: a 500 with a traceback in the log
    except NotFoundError as exc:
        services.chroma.reset(exc)
        return call(services.chroma.collection())
    except Exception as exc:
        log.warning("chroma call failed, will reconnect: %s", exc)
        services.chroma.reset(exc)
        raise ChromaUnavailable(services.chroma.last_error) from exc
