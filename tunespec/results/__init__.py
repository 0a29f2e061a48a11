"""Using a published run: `tunespec predict` (generate with the tuned model) and
`tunespec export` (a standalone copy of it in another format).

Both read a run only through the artifact contract (its manifest.json and the folders it
lists); what is generated or written with the model is the backend's job
(`Backend.predictor`, `Backend.export`), since only the backend knows how its tuned model
is loaded or called (local weights, a Vertex endpoint). An export goes to a folder of its
own beside the run, with its own manifest, and is recorded in the run's manifest
(`exports`), so `tunespec verify` of the run still holds.
"""

from tunespec.results.lookup import PublishedRun, find_run
from tunespec.results.prompts import PromptItem, read_prompts

__all__ = ["PublishedRun", "PromptItem", "find_run", "read_prompts"]
