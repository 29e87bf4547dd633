"""`lenslab`: apply the trained models to photos, one subcommand per system.

Subcommand modules import torch and the models inside their functions, so `lenslab --help` and
`lenslab models` start without loading them.
"""

from __future__ import annotations

import click

from lenslab.cli.aesthetics import enhance, rate
from lenslab.cli.photobook import album, compare
from lenslab.cli.pose import pose, similar
from lenslab.cli.registry import models
from lenslab.cli.selfie import selfie
from lenslab.cli.style import photographer, similar_photographers


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Apply lenslab's trained models to photos.

    \b
    Examples:
      lenslab models
      lenslab selfie me.jpg holiday/ 'shots/*.png' --format jsonl
      lenslab photographer shoot/ --top-k 3
      lenslab rate holiday/ --user A1XRT4FJ3Q9ZK
      lenslab pose portrait.jpg --masks skeletons/
      lenslab similar my_shot.jpg --among trip/
      lenslab album holiday/ --places 12
      lenslab compare take1.jpg take2.jpg
    """


for command in (models, selfie, photographer, similar_photographers, rate, enhance, pose,
                similar, album, compare):
    main.add_command(command)
