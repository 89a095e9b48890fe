"""`python -m marteau`: the `marteau` command, for a node or a virtualenv whose
scripts directory is not on PATH."""

from marteau.cli import main

main(prog_name="marteau")
