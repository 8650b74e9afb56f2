"""Entry point of the PyInstaller build (packaging/explorer.spec): the same `explorer` command as pip's."""

import multiprocessing

from explorer.cli import run

if __name__ == "__main__":
    multiprocessing.freeze_support()  # any worker process re-enters here in a frozen app
    run()
