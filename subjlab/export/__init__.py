"""`subjlab export`: generated sets and a study's crowd records as Hugging Face datasets.

`dataset` writes them (save_to_disk + parquet, atomically), `provenance` gathers where a set came
from and under what licence, `card` renders the dataset card (README.md) from `card.md.j2`.
The command's argument parsing is `subjlab.commands.export`.
"""

from subjlab.export.dataset import Table, export_crowd, export_generated, write_dataset

__all__ = ["Table", "export_crowd", "export_generated", "write_dataset"]
