"""`lenslab`: apply the trained models to photos, one subcommand per system.

Subcommand modules import torch and the models inside their functions, so `lenslab --help` and
`lenslab models` start without loading them.
"""

from __future__ import annotations

import click

from lenslab.cli.photographer import photographer, similar_photographers
from lenslab.cli.registry import models
from lenslab.cli.selfie import selfie


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Apply lenslab's trained models to photos.

    \b
    Examples:
      lenslab models
      lenslab selfie me.jpg holiday/ 'shots/*.png' --format jsonl
    """


for command in (models, selfie, photographer, similar_photographers):
    main.add_command(command)
