"""The `subjlab` command tree.

Each sub-command lives in a small module under `subjlab/commands/` and is imported only when it is
run (or when `--help` lists it), so `subjlab --help` stays fast and one area's heavy imports (torch,
Flask) never slow another. Commands call into `analysis`, `annotation_server`, `generation` and
`training`; they hold argument parsing and output formatting only.

Errors: a ValueError / FileNotFoundError raised by the toolkit (bad input, a malformed file) is shown
as `error: <message>` with exit code 2 and no traceback; set SUBJLAB_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

#: command name -> (module, attribute, one-line help). The help is shown without importing the module.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("subjlab.commands.data", "data", "List the tasks' data (counts per split and label), or fetch the full datasets."),
    "tasks": ("subjlab.commands.data", "tasks", "Show the task registry or validate a task file."),
    "rank": ("subjlab.commands.rank", "rank", "Rank tasks by objectivity from pairwise judgments (Bradley-Terry)."),
    "agreement": ("subjlab.commands.agreement", "agreement", "Per-instance annotation agreement, Fleiss' kappa, Krippendorff's alpha."),
    "diversity": ("subjlab.commands.diversity", "diversity", "Remote Clique / Chamfer diversity and top-5 similarity to real data."),
    "evaluate": ("subjlab.commands.evaluate", "evaluate", "Accuracy and Macro-F1 by agreement threshold; subjectivity-gap correlations."),
    "serve": ("subjlab.commands.server", "serve", "Run the annotation server (gunicorn)."),
    "study": ("subjlab.commands.server", "study", "Create, fill, watch and export crowd studies."),
    "db": ("subjlab.commands.server", "db", "Database schema migrations (Alembic)."),
    "mturk": ("subjlab.commands.mturk", "mturk", "Publish and review studies on Amazon Mechanical Turk."),
    "generate": ("subjlab.commands.generate", "generate", "Generate synthetic labeled texts with an LLM (zero-/few-shot)."),
    "train": ("subjlab.commands.train", "train", "Fine-tune an encoder classifier and write metrics and predictions."),
    "run": ("subjlab.commands.run", "run", "Run a whole study from one config file (TOML)."),
    "demo": ("subjlab.commands.run", "demo", "Run the demo study on embedded defaults and write a report."),
    "judge": ("subjlab.commands.run", "judge", "Pairwise objectivity judgments made by an LLM."),
    "export": ("subjlab.commands.export", "export", "Write generated sets or crowd records as Hugging Face datasets with a card."),
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command's module only when that command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (mod, _, _) in COMMANDS.items() if _module_exists(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        if not _module_exists(module_name):
            return None
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError, PermissionError) as exc:
            if os.environ.get("SUBJLAB_DEBUG"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


def _module_exists(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="subjlab")
def cli() -> None:
    """subjlab: how far can LLM-generated training data replace human labels, and why does it fail
    on subjective tasks?

    Collect crowd judgments of task objectivity and instance labels (serve, study, mturk), rank tasks
    and measure agreement (rank, agreement), generate synthetic data (generate), train classifiers
    (train), evaluate by subjectivity and diversity (evaluate, diversity), or run it all (run, demo);
    share generated sets and crowd records as Hugging Face datasets (export).

    Data: --data DIR on data commands, else $SUBJLAB_DATA, else the slices bundled with subjlab
    (subjlab data list shows them; subjlab data fetch TASK --out DIR gets a task's full data).
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="subjlab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
