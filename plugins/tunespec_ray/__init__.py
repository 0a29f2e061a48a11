"""tunespec's `ray` backend: the local backend's training loop, data-parallel under Ray Train.

See docs/ray.md. Modules: `config` (the spec's backend block), `job` (the compiled Ray Train
job, no Ray import), `cluster` (embedded or existing cluster, quiet logs), `resources`
(validate against a live cluster), `run` (apply: TorchTrainer on this driver), `worker`
(the code each Ray Train worker runs), `remote` (detached runs through the Ray Jobs API).
"""
