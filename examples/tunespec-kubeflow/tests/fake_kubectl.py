"""A stand-in for a Kubernetes cluster with the Kubeflow training operator, behind the
`kubectl` commands the plugin runs (apply -f, get/delete pytorchjob, config contexts).

The cluster is a folder (FAKE_KUBE_DIR) holding one JSON file per object; tests move a job
through its life by writing its status conditions (`set_condition`), and write what its
container would into the pod's file system (`pod_folder`), which `kubectl cp` reads. `apply` checks what
the training operator checks: kind and apiVersion, a Master replica, a container named
`pytorch`, and rejects namespaces that do not exist (only `default` and `ml` do).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

CONTEXT = "fake-cluster"
NAMESPACES = {"default", "ml"}


def _cluster() -> Path:
    return Path(os.environ["FAKE_KUBE_DIR"])


def _object_file(kind: str, namespace: str, name: str) -> Path:
    return _cluster() / namespace / kind.lower() / f"{name}.json"


def set_condition(cluster: Path, namespace: str, name: str, condition: str, message: str = "") -> None:
    """Append a true condition (Created, Running, Succeeded, Failed) to a job, as the operator does."""
    path = cluster / namespace / "pytorchjob" / f"{name}.json"
    job = json.loads(path.read_text())
    job["status"]["conditions"].append({"type": condition, "status": "True", "message": message})
    path.write_text(json.dumps(job))


def pod_folder(cluster: Path, namespace: str, pod: str) -> Path:
    """A pod's file system: tests write there what the container would (the run's folder)."""
    return cluster / namespace / "pods" / pod


def _copy_from_pod(source: str, destination: str) -> int:
    """`kubectl cp NAMESPACE/POD:PATH DEST`, for folders."""
    import shutil

    where, _, path = source.partition(":")
    namespace, _, pod = where.partition("/")
    folder = pod_folder(_cluster(), namespace, pod)
    if not folder.is_dir():
        return _fail(f'pods "{pod}" not found')
    found = folder / path.lstrip("/")
    if not found.exists():
        return _fail(f"{path}: No such file or directory")
    shutil.copytree(found, destination, dirs_exist_ok=True)
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _apply(file: str) -> int:
    for obj in yaml.safe_load_all(Path(file).read_text()):
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        namespace = meta.get("namespace", "default")
        if namespace not in NAMESPACES:
            return _fail(f'namespaces "{namespace}" not found')
        if kind == "PyTorchJob":
            if obj.get("apiVersion") != "kubeflow.org/v1":
                return _fail(f"no matches for kind PyTorchJob in version {obj.get('apiVersion')}")
            master = obj["spec"]["pytorchReplicaSpecs"].get("Master")
            containers = master["template"]["spec"]["containers"] if master else []
            if not any(c.get("name") == "pytorch" for c in containers):
                return _fail("PyTorchJob needs a Master replica with a container named pytorch")
        path = _object_file(kind, namespace, meta["name"])
        existed = path.exists()
        if kind == "PyTorchJob":
            obj["status"] = json.loads(path.read_text())["status"] if existed else {"conditions": [{"type": "Created", "status": "True"}]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))
        print(f"{kind.lower()}/{meta['name']} {'unchanged' if existed else 'created'}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--context"]:
        if argv[1] != CONTEXT:
            return _fail(f'context "{argv[1]}" does not exist')
        argv = argv[2:]
    if argv[:2] == ["config", "current-context"]:
        print(CONTEXT)
        return 0
    if argv[:2] == ["config", "get-contexts"]:
        return 0 if argv[2] == CONTEXT and print(CONTEXT) is None else 1
    if argv[:2] == ["apply", "-f"]:
        return _apply(argv[2])
    if argv[0] == "cp":
        return _copy_from_pod(argv[1], argv[2])
    if argv[0] in ("get", "delete") and argv[1] == "pytorchjob":
        path = _object_file("PyTorchJob", argv[argv.index("-n") + 1], argv[2])
        if not path.exists():
            return 0 if "--ignore-not-found" in argv else _fail("not found")
        if argv[0] == "get":
            print(path.read_text())
        else:
            path.unlink()
            print(f'pytorchjob.kubeflow.org "{argv[2]}" deleted')
        return 0
    return _fail(f"fake kubectl does not know {argv}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
