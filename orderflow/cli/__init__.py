"""orderflow's command line, one module per topic (orders, holds and promises, stock, carriers,
the local stack). Every failure is one line and an exit code, never a traceback."""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Sequence

import typer
from pydantic import ValidationError

from domain.errors import OrderflowError, UndecodablePayload
from orderflow.cli import carriers, holds, keys, orders, stock, system
from orderflow.cli.common import EXIT_REFUSED, EXIT_UNREACHABLE, app
from orderflow.temporal import ServerUnreachable

# The topic modules register their commands on ``app`` when imported.
TOPICS = (orders, holds, stock, carriers, system, keys)


# The engine's refusals name the JSON field a caller sent; the command line says the flag its
# user typed instead.
FLAGS = {
    "customer_message": "--message",
    "reason_code": "--reason",
    "reason": "--reason",
    "resolution": "--resolution",
    "reference": "--ref",
    "due_at": "--due",
    "text": "--text",
    "evidence.location": "--evidence location=...",
    "line": "--line",
    "lines": "--line",
    "ship": "--ship",
}
_FIELD = re.compile(
    r"(?:(?<=^)|(?<=: )|(?<=; ))(" + "|".join(re.escape(f) for f in FLAGS) + r")(?=[ :])"
)


def in_flags(message: str) -> str:
    """A refusal as the command line's user reads it: JSON fields named as flags."""
    return _FIELD.sub(lambda m: FLAGS[m.group(1)], message)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def run(argv: Sequence[str]) -> int:
    """Run one command and turn every failure into one line; returns the exit code."""
    args = list(argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="orderflow", standalone_mode=False)
        code = 0
    except typer.Exit as ex:
        code = ex.exit_code
    except typer.Abort:
        code = 130
    except typer.TyperException as ex:  # usage errors: unknown option, missing argument ...
        text = ex.format_message() if hasattr(ex, "format_message") else str(ex)
        code = _fail(text.splitlines()[0], EXIT_REFUSED)
    except OrderflowError as ex:
        code = _fail(in_flags(str(ex)), EXIT_REFUSED)
    except UndecodablePayload as ex:  # a payload whose codec key this machine does not hold
        code = _fail(str(ex), EXIT_REFUSED)
    except ValidationError as ex:
        first = ex.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        code = _fail(f"{where}: {first['msg']}" if where else first["msg"], EXIT_REFUSED)
    except ServerUnreachable as ex:
        if debug:
            traceback.print_exc()
        code = _fail(str(ex), EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        code = 130
    except Exception as ex:  # the promise: never a traceback unless --debug
        if debug:
            traceback.print_exc()
        code = _fail(
            f"{type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''} (rerun with --debug)",
            1,
        )
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    code = run(sys.argv[1:] if argv is None else argv)
    # Leave without interpreter finalization: the Temporal core's native threads may still be
    # winding down, and tearing Python down under them can abort a finished command.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
