"""What the after-alert routers share: the answer to a use case's refusal, and the bodies'
common parts. A refusal is never a 500: 404 outside reach, 409 the contract, 403 scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException, Response

from app.after_alert import CommandRefused, Done, NotFound
from app.services import CommandInvalid, OwnershipRefused

#: Documented answers of every after-alert command (besides the shared errors).
COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Kafka runtime: the event is published (event_id); the worker "
                         "applies it and reads show it once its record is mirrored."},
    409: {"description": "The contract refuses the command now: ``detail`` says why "
                         "(nothing was recorded)"},
}


@contextmanager
def answered() -> Iterator[None]:
    """Translate a use case's refusals into HTTP answers."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except CommandRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    except OwnershipRefused as exc:  # the household now belongs outside the caller's scope
        raise HTTPException(403, str(exc)) from exc
    except CommandInvalid as exc:  # the catalog rejected the event built from the body
        raise HTTPException(422, str(exc)) from exc


def run_command(command: Callable[[], Done], response: Response) -> dict[str, Any]:
    """Run ``command``; 200 with its result (embedded) or 202 "published" (Kafka)."""
    with answered():
        done = command()
    if done.published:
        response.status_code = 202
    return done.answer()
