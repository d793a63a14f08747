"""`--dry-run`: check what a run would touch and print its plan and bill, without Ray or an engine.

Checks, each a one-line `PlanCheckError` when it fails (the CLI exits 2):
- the config (already validated by the caller) and the seed files: readable and normalisable,
  with the quarantine counted by reason;
- the output: a probe file written and deleted through `storage` (local or s3://);
- `engine.kind=openai`: `GET {base_url}/models` with the key from `engine.api_key_env`
  (reachable, key accepted; a served-model list without `engine.model` is a warning).

The plan counts requests with the augment stage's own planning functions (`direct_variants`,
`rewrite_rows`, `solve_rows`), so it counts what a run would send: direct variants exactly, rewrite
variants as their requests (each accepted rewrite is at most one variant), the solve requests of
round 0 (k per variant) and the adaptive worst case (max_attempts per variant; prop2diff: round 0
plus at most budget_per_variant x variants). Tokens are
estimates, stated as such where they are printed (see `ESTIMATES`).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from metamath_ray import storage
from metamath_ray.augment.base import Variant
from metamath_ray.augment.budget import wave_budget
from metamath_ray.augment.config import AugmentConfig
from metamath_ray.augment.registry import augmentation
from metamath_ray.pipeline.augment import direct_variants, rewrite_rows, solve_rows
from metamath_ray.seeds import LoadedSeeds, SeedSourceError, load_seeds

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # a tokenizer-free estimate; LLaMA/GPT tokenizers give 3.5-4.5 on English math text
# Mean reference-solution length, measured once on the full training sets in shared/data
# (GSM8K train: 7473 solutions, 239 chars without the <<calc>> notes and the #### line;
# MATH train: 7500 solutions, 552 chars), divided by CHARS_PER_TOKEN. Teachers often write more.
GENERATED_TOKENS_PER_SOLUTION = {"gsm8k": 60, "math": 138}
# A local teacher's speed is not in the config; this is the assumption printed with GPU-hours
# (a 7B model under vLLM continuous batching on one A100-class GPU, generated tokens only).
ASSUMED_TOKENS_PER_S_PER_GPU = 1000
ESTIMATES = (
    f"prompt tokens = characters / {CHARS_PER_TOKEN} (no tokenizer loaded); generated tokens per chain of "
    f"thought = mean reference solution (GSM8K train {GENERATED_TOKENS_PER_SOLUTION['gsm8k']}, MATH train "
    f"{GENERATED_TOKENS_PER_SOLUTION['math']} tokens), per rewrite = the seed question's length; each capped at "
    "max_tokens"
)
PROBE_TIMEOUT_S = 15.0


class PlanCheckError(Exception):
    """Something a real run would touch is not usable: one line, exit status 2."""


# ---------------------------------------------------------------------------------------------
# Checks


def load_checked_seeds(cfg: AugmentConfig) -> LoadedSeeds:
    """The seeds as the run would load them; a source that cannot be read is a one-line error."""
    try:
        loaded = load_seeds(cfg.seeds, limit=cfg.limit, max_question_chars=cfg.max_question_chars)
    except (SeedSourceError, FileNotFoundError, OSError) as e:
        raise PlanCheckError(f"seeds: {str(e).splitlines()[0]}") from None
    if not loaded.seeds:
        raise PlanCheckError(f"seeds: none of the {loaded.rows_read} rows read is usable "
                             f"({_reasons(loaded.quarantine) or 'no rows'})")
    return loaded


def _reasons(quarantine: list[dict]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in Counter(q["reason"] for q in quarantine).most_common())


def probe_output(output: str) -> str:
    """Write and delete a probe under `output` through `storage`; returns the probe's URI."""
    folder = storage.join(output, f".dry-run-probe-{uuid.uuid4().hex[:12]}")
    created = _missing_local_folders(output)
    try:
        storage.write_bytes(storage.join(folder, "probe"), b"metamath-ray dry run\n")
        storage.delete_dir(folder)
    except (OSError, storage.StorageError) as e:
        raise PlanCheckError(f"output {output} is not writable: {str(e).splitlines()[0]}") from None
    finally:
        for path in created:  # a dry run leaves the disk as it found it
            if os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)
    return folder


def _missing_local_folders(output: str) -> list[str]:
    """The folders of a local `output` path that do not exist yet, deepest first (the probe makes them)."""
    if "://" in output:
        return []
    missing, path = [], os.path.abspath(output)
    while path and not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def check_endpoint(engine) -> str:
    """`GET {base_url}/models` with the key; returns a one-line description of what answered."""
    base_url = (getattr(engine, "base_url", None) or "").rstrip("/")
    if not base_url:
        raise PlanCheckError("engine.base_url is not set (kind=openai needs the API root, e.g. .../v1)")
    request = urllib.request.Request(f"{base_url}/models", headers=_auth_header(engine))
    timeout = min(float(getattr(engine, "request_timeout_s", PROBE_TIMEOUT_S) or PROBE_TIMEOUT_S), PROBE_TIMEOUT_S)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's endpoint
            body = response.read()
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise PlanCheckError(f"endpoint {base_url}: the key was refused (HTTP {e.code}); "
                                 f"check {getattr(engine, 'api_key_env', None) or 'engine.api_key_env'}") from None
        raise PlanCheckError(f"endpoint {base_url}/models answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise PlanCheckError(f"endpoint {base_url} is not reachable: {str(reason).splitlines()[0]}") from None
    return _served_models_line(base_url, body, engine.model)


def _auth_header(engine) -> dict[str, str]:
    name = getattr(engine, "api_key_env", None)
    if not name:
        return {}
    key = os.environ.get(name, "")
    if not key:
        raise PlanCheckError(f"engine.api_key_env={name}: that environment variable is not set or empty")
    return {"Authorization": f"Bearer {key}"}


def _served_models_line(base_url: str, body: bytes, model: str) -> str:
    try:
        served = [m.get("id") for m in json.loads(body).get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return f"endpoint {base_url}: reachable, key accepted (its /models answer is not a model list)"
    if model in served:
        return f"endpoint {base_url}: reachable, key accepted, serves {model}"
    log.warning("endpoint %s does not list engine.model=%s among its %d models (%s)", base_url, model,
                len(served), ", ".join(map(str, served[:5])) or "none")
    return f"endpoint {base_url}: reachable, key accepted; {model} is NOT among the {len(served)} models it lists"


# ---------------------------------------------------------------------------------------------
# Counting


@dataclass
class Pass:
    """The requests of one generation pass and their token estimate."""

    requests: int = 0
    prompt_chars: int = 0
    generated_tokens: int = 0  # expected, from the measured averages
    max_generated_tokens: int = 0  # every request running to max_tokens

    def add(self, n: int, prompt_chars: int, expected: int, cap: int) -> None:
        self.requests += n
        self.prompt_chars += n * prompt_chars
        self.generated_tokens += n * min(expected, cap)
        self.max_generated_tokens += n * cap

    @property
    def prompt_tokens(self) -> int:
        return -(-self.prompt_chars // CHARS_PER_TOKEN)


@dataclass
class Cell:
    """One dataset x augmentation row of the plan."""

    seeds: int = 0
    variants: int = 0  # direct variants (exact)
    rewrite_requests: int = 0  # rewrite augmentations: at most one variant each
    round0: int = 0
    worst_case: int = 0


@dataclass
class AugmentPlan:
    seeds: dict[str, int] = field(default_factory=dict)  # per dataset
    cells: dict[tuple[str, str], Cell] = field(default_factory=lambda: defaultdict(Cell))
    rewrite: Pass = field(default_factory=Pass)
    round0: Pass = field(default_factory=Pass)
    worst_case: Pass = field(default_factory=Pass)


def plan_augment(cfg: AugmentConfig, loaded: LoadedSeeds) -> AugmentPlan:
    """Count every request the augment run of `cfg` would send for `loaded` seeds."""
    plan = AugmentPlan(seeds=dict(Counter(s["dataset"] for s in loaded.seeds)))
    system_chars = len(_system_prompt(cfg.engine))
    for seed in loaded.seeds:
        for aug in cfg.augmentations:
            cell = plan.cells[(seed["dataset"], aug)]
            cell.seeds += 1
            for variant in _variants_to_solve(seed, aug, cfg, cell, plan.rewrite, system_chars):
                _count_solves(variant, seed, aug, cfg, cell, plan, system_chars)
    if cfg.adaptive == "prop2diff":
        plan.worst_case = _within_prop2diff_budget(plan.round0, plan.worst_case, plan.cells, cfg.budget_per_variant)
    return plan


def _within_prop2diff_budget(round0: Pass, every_cap: Pass, cells: dict, budget_per_variant: float) -> Pass:
    """prop2diff asks at most budget_per_variant x variants after round 0 (each wave its share, rounded
    down): the worst case is round 0 plus that, or every variant to max_attempts if that is less. The
    extra requests' tokens are counted pro rata (which variants get them depends on the answers)."""
    variants = sum(c.variants + c.rewrite_requests for c in cells.values())
    extra = every_cap.requests - round0.requests
    allowed = wave_budget(variants, budget_per_variant)
    if extra <= allowed:
        return every_cap
    scale = allowed / extra
    return Pass(requests=round0.requests + allowed,
                prompt_chars=round0.prompt_chars + round((every_cap.prompt_chars - round0.prompt_chars) * scale),
                generated_tokens=round0.generated_tokens + round((every_cap.generated_tokens - round0.generated_tokens) * scale),
                max_generated_tokens=round0.max_generated_tokens
                + round((every_cap.max_generated_tokens - round0.max_generated_tokens) * scale))


def _variants_to_solve(seed: dict, aug: str, cfg: AugmentConfig, cell: Cell, rewrite: Pass,
                       system_chars: int) -> list[Variant]:
    """Direct variants as the run builds them; for a rewrite augmentation one stand-in per request
    (the seed question in place of the rewrite it would be solved as: the upper bound)."""
    if not augmentation(aug).needs_rewrite:
        variants = direct_variants(seed, aug, cfg)
        cell.variants += len(variants)
        return variants
    rows = rewrite_rows(seed, aug, cfg)
    cell.rewrite_requests += len(rows)
    rewrite_tokens = -(-len(seed["question"]) // CHARS_PER_TOKEN)
    for row in rows:
        rewrite.add(1, len(row["prompt"]) + system_chars, rewrite_tokens, cfg.rewrite_sampling.max_tokens)
    return [Variant(seed_id=seed["seed_id"], dataset=seed["dataset"], aug=aug, variant=row["variant"],
                    query=seed["question"], expected=str(seed["answer"]), original_question=seed["question"])
            for row in rows]


def _count_solves(variant: Variant, seed: dict, aug: str, cfg: AugmentConfig, cell: Cell, plan: AugmentPlan,
                  system_chars: int) -> None:
    budget = cfg.aug[aug]
    worst = budget.k if cfg.adaptive == "off" else budget.max_attempts  # prop2diff: see _within_prop2diff_budget
    prompt = solve_rows(variant, seed, 0, 1, 0, cfg, 0)[0]["prompt"]  # the exact prompt the run sends k times
    expected = GENERATED_TOKENS_PER_SOLUTION.get(seed["dataset"], GENERATED_TOKENS_PER_SOLUTION["math"])
    plan.round0.add(budget.k, len(prompt) + system_chars, expected, cfg.sampling.max_tokens)
    plan.worst_case.add(worst, len(prompt) + system_chars, expected, cfg.sampling.max_tokens)
    cell.round0 += budget.k
    cell.worst_case += worst


def _system_prompt(engine) -> str:
    """The system message sent with every request in chat mode (it is billed as input too)."""
    chat = getattr(engine, "chat", False) or (engine.kind == "openai" and getattr(engine, "api", "chat") == "chat")
    return (getattr(engine, "system_prompt", None) or "") if chat else ""


# ---------------------------------------------------------------------------------------------
# Cost


def cost_line(engine, passes: dict[str, Pass]) -> str:
    """Dollars for an API teacher with prices set, GPU-hours at a stated speed for a local one."""
    if engine.kind == "openai":
        price_in = getattr(engine, "price_per_1m_input_tokens", None)
        price_out = getattr(engine, "price_per_1m_output_tokens", None)
        if price_in is None or price_out is None:
            return ("cost: unknown; set engine.price_per_1m_input_tokens and engine.price_per_1m_output_tokens "
                    "for an estimate")
        costs = {name: (p.prompt_tokens * price_in + p.generated_tokens * price_out) / 1e6 for name, p in passes.items()}
        ceiling = {name: (p.prompt_tokens * price_in + p.max_generated_tokens * price_out) / 1e6
                   for name, p in passes.items()}
        return (f"cost: ${costs['rewrite'] + costs['round 0']:,.2f} for the rewrites and round 0, up to "
                f"${costs['rewrite'] + costs['worst case']:,.2f} in the adaptive worst case "
                f"(${ceiling['rewrite'] + ceiling['worst case']:,.2f} if every response ran to max_tokens); "
                f"at ${price_in}/1M input and ${price_out}/1M output tokens from the config")
    hours = {name: p.generated_tokens / ASSUMED_TOKENS_PER_S_PER_GPU / 3600 for name, p in passes.items()}
    gpus = engine.replicas * max(engine.num_gpus_per_replica, 1)
    first, worst = hours["rewrite"] + hours["round 0"], hours["rewrite"] + hours["worst case"]
    return (f"GPU-hours: {first:,.2f} for the rewrites and round 0, up to {worst:,.2f} in the adaptive worst case "
            f"(~{worst / gpus:,.2f} h wall on {gpus:g} GPU(s)); ASSUMED {ASSUMED_TOKENS_PER_S_PER_GPU} generated "
            "tokens/s per GPU (a 7B model under vLLM batching on an A100-class GPU), not measured here")


# ---------------------------------------------------------------------------------------------
# The dry run of one augment config


def dry_run_augment(cfg: AugmentConfig) -> list[str]:
    """Every check of an augment run, then its plan as lines to print. Raises PlanCheckError."""
    loaded = load_checked_seeds(cfg)
    run_uri = storage.join(cfg.output, cfg.run_name)
    probe_output(cfg.output)
    plan = plan_augment(cfg, loaded)
    per_dataset = ", ".join(f"{n} {dataset}" for dataset, n in sorted(plan.seeds.items()))
    checks = [f"seeds: {loaded.rows_read} rows read = {len(loaded.seeds)} seeds ({per_dataset}) + "
              f"{len(loaded.quarantine)} quarantined" + (f" ({_reasons(loaded.quarantine)})" if loaded.quarantine else ""),
              f"output: {cfg.output} writable (a probe was written and deleted)"]
    if cfg.engine.kind == "openai":
        checks.append(check_endpoint(cfg.engine))
    log.debug("dry run checks passed: %s", "; ".join(checks))
    return [f"augment dry run: {run_uri} (nothing generated, no Ray, no engine started)",
            *(f"  check ok: {c}" for c in checks), *plan_lines(plan, cfg)]


def plan_lines(plan: AugmentPlan, cfg: AugmentConfig) -> list[str]:
    """The plan as a reader sees it: per dataset x augmentation, then per pass, then the bill."""
    budget_note = f" (budget {cfg.budget_per_variant:g} extra per variant)" if cfg.adaptive == "prop2diff" else ""
    lines = [f"  teacher: {cfg.engine.kind} {cfg.engine.model}; adaptive={cfg.adaptive}{budget_note}",
             f"  {'dataset':8} {'aug':11} {'seeds':>6} {'variants':>9} {'rewrite req':>11} {'round 0':>8} {'worst case':>10}"]
    for (dataset, aug), c in sorted(plan.cells.items(), key=lambda kv: (kv[0][0], cfg.augmentations.index(kv[0][1]))):
        variants = f"{c.variants:,}" if not c.rewrite_requests else f"<={c.rewrite_requests:,}"
        rewrites = f"{c.rewrite_requests:,}" if augmentation(aug).needs_rewrite else "-"
        lines.append(f"  {dataset:8} {aug:11} {c.seeds:>6,} {variants:>9} {rewrites:>11} {c.round0:>8,} {c.worst_case:>10,}")
    passes = {"rewrite": plan.rewrite, "round 0": plan.round0, "worst case": plan.worst_case}
    lines.append(f"  {'pass':28} {'requests':>9} {'prompt tok':>11} {'generated tok':>13} {'at most':>11}")
    for name, label in (("rewrite", "rewrite pass"), ("round 0", "solve round 0 (k each)"),
                        ("worst case", "solve, all rounds (worst)")):
        p = passes[name]
        lines.append(f"  {label:28} {p.requests:>9,} {p.prompt_tokens:>11,} {p.generated_tokens:>13,} "
                     f"{p.max_generated_tokens:>11,}")
    lines += [f"  {cost_line(cfg.engine, passes)}", f"  estimates: {ESTIMATES}"]
    return lines


# ---------------------------------------------------------------------------------------------
# The dry run of `metamath-ray run`


def dry_run_pipeline(cfg) -> list[str]:
    """`run --dry-run`: every stage section validated with its links, the output root probed, the
    augment stage's checks and plan, and the endpoint of any openai stage. Raises PlanCheckError."""
    from metamath_ray.pipeline.run import stage_configs

    configs = stage_configs(cfg)  # a ConfigError here is the CLI's usual one-line error
    probe_output(cfg.root)
    lines = [f"run dry run: {cfg.root}, stages {', '.join(configs)} (every section validated)"]
    if "augment" in configs:
        lines += dry_run_augment(configs["augment"])
    if "train" in configs:
        train = configs["train"]
        source = "the augment run above" if "augment" in configs else _existing(train.data, "train.data")
        lines.append(f"train: {train.model} on {source}")
    if "evaluate" in configs:
        evaluate = configs["evaluate"]
        model = "the trained model" if "train" in configs else evaluate.engine.model
        lines.append(f"evaluate: {model} on {', '.join(evaluate.datasets)} with engine {evaluate.engine.kind}")
        if evaluate.engine.kind == "openai":
            lines.append(f"  check ok: {check_endpoint(evaluate.engine)}")
    return lines


def _existing(uri: str | None, name: str) -> str:
    if not uri:
        raise PlanCheckError(f"{name} is not set and augment is not among the stages")
    if not uri.startswith(("bundled:", "hf:")) and not storage.exists(uri):
        raise PlanCheckError(f"{name}: {uri} does not exist")
    return uri


__all__ = ["PlanCheckError", "dry_run_augment", "dry_run_pipeline", "plan_augment", "check_endpoint", "probe_output", "cost_line"]
