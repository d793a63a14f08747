"""Evaluation: benchmark sets, prompts, two scorers, metrics and reports (pure; no Ray here).

- `datasets`: GSM8K, MATH, MATH500, GSM8K-Backward, SVAMP -> `EvalItem` (bundled slices, files, HF).
- `prompts`: MetaMath's zero-shot CoT prompt (default), the training prompt, or few-shot.
- `scoring`: strict (`metamath_ray.answers`) and MetaMath-compatible (`metamath_compat`) verdicts.
- `metrics` / `summary`: Wilson CIs, maj@k, unbiased pass@k, per type x level tables.
- `report` / `compare`: report.json, report.md, plots; deltas between two runs.
- `config.EvaluateConfig`; `model_source.materialize_model` (tiny, folders, hub ids, s3://).
The Ray Data graph is `metamath_ray.pipeline.evaluate.run_evaluate`.
"""
