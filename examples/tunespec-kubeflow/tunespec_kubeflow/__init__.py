"""tunespec-kubeflow: compile tunespec specs into Kubeflow `PyTorchJob`s.

Modules, in the order a reader needs them:

    config.py    the `backend:` block options (KubeflowConfig)
    manifest.py  spec -> ConfigMap + PyTorchJob manifests (pure functions)
    kubectl.py   the cluster, through the user's kubectl: apply, get, delete
    backend.py   the Backend: validate, compile, apply, status, cancel
    plugin.py    the entry point: registers the backend with tunespec
"""
