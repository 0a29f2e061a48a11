"""The artifact contract: run directories, manifest.json, metrics.jsonl, verification.

Public API for backends: write files into `RunContext.run_dir.path` (a `RunDirectory`),
log metrics with `MetricsLog`; tunespec finalises the run (manifest, checksums, atomic
rename) after `Backend.apply` returns.
"""

from tunespec.artifacts.manifest import MANIFEST_FILE, Manifest, OutputFile, environment_versions
from tunespec.artifacts.rundir import MetricsLog, RunDirectory, hash_tree, output_root_problem, sha256_file
from tunespec.artifacts.verify import is_published, read_manifest, verify_run

__all__ = [
    "MANIFEST_FILE",
    "Manifest",
    "MetricsLog",
    "OutputFile",
    "RunDirectory",
    "environment_versions",
    "hash_tree",
    "is_published",
    "output_root_problem",
    "read_manifest",
    "sha256_file",
    "verify_run",
]
