"""``jiahe soak``: the Kafka runtime's soak test as a command (see :mod:`streams.soak`)."""

from __future__ import annotations

import click


def register(main_group: click.Group) -> None:
    """Add ``soak`` to the main ``jiahe`` group."""
    from streams.soak import soak_command

    main_group.add_command(soak_command)
