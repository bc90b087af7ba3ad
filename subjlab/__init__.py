"""subjlab: synthetic vs human-labeled training data, and the subjectivity of classification tasks.

The hub holds the shared vocabulary: `subjlab.tasks` (TaskSpec and the registry), `subjlab.records`
(record shapes and their readers/writers), `subjlab.data` (where task data lives), `subjlab.packaged_models`
(the packaged default models) and the CLI (`subjlab.cli`, commands in `subjlab.commands`).
"""

__version__ = "0.1.0"
