"""Entry point (`[project.entry-points.tunespec] kubeflow = "tunespec_kubeflow.plugin"`).

Registering is all it does; it must stay cheap, since every `tunespec` command loads it.
"""

import tunespec

from tunespec_kubeflow.backend import KubeflowBackend


@tunespec.hookimpl
def tunespec_backends():
    return [KubeflowBackend()]
