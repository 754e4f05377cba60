"""Run the orderflow worker: ``python worker.py`` (same as ``orderflow worker``)."""

from orderflow.cli import main

if __name__ == "__main__":
    main(["worker"])
