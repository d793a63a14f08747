import math

import pytest

from metamath_ray.train.metrics import StepLog, flops_per_token, lr_multiplier, mfu, warmup_steps_for


def test_cosine_schedule_warms_up_peaks_and_decays_to_zero():
    total, warm = 100, warmup_steps_for(100, 0.03)
    assert warm == 3
    lrs = [lr_multiplier(s, total, warm, "cosine") for s in range(total + 5)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(1 / 3)
    assert lrs[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # monotone decay, also past the end
    assert lrs[total] == pytest.approx(0.0, abs=1e-12) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert lr_multiplier(51, 100, 2, "linear") == pytest.approx(0.5)
    assert lr_multiplier(70, 100, 2, "constant") == 1.0


def test_flops_per_token_is_six_n_plus_attention():
    from transformers import AutoModelForCausalLM

    from metamath_ray.models import tiny_model_dir

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir()))
    cfg = model.config
    # Everything but the input embedding and the norms is a matmul weight.
    n = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name and "norm" not in name)
    attention = 12 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * 128
    assert flops_per_token(cfg, 128) == pytest.approx(6 * n + attention)


def test_mfu_is_achieved_over_peak():
    assert mfu(1000.0, 1e9, 1.0, 2) == pytest.approx(0.5)


def test_step_log_resume_cuts_at_saved_step():
    log = StepLog(10)
    for s in range(1, 6):
        log.log({"step": s, "loss": 1.0 / s, "lr": 0.1, "tokens_per_s": 1.0, "mfu": 0.0})
    assert [r["step"] for r in StepLog.from_jsonl(log.to_jsonl(), 3)] == [1, 2, 3]
    assert math.isclose(StepLog.from_jsonl(log.to_jsonl(), 5)[-1]["loss"], 0.2)


def test_schedule_caps_epochs_by_max_steps_and_warms_up_on_the_capped_length():
    from metamath_ray.train.config import TrainConfig
    from metamath_ray.train.metrics import Schedule

    full = Schedule(TrainConfig(data="d", output="o", epochs=3, warmup_ratio=0.1), steps_per_epoch=10)
    assert (full.epochs_total, full.total_steps, full.warmup) == (30, 30, 3)
    capped = Schedule(TrainConfig(data="d", output="o", epochs=3, warmup_ratio=0.1, max_steps=12), steps_per_epoch=10)
    assert (capped.epochs_total, capped.total_steps, capped.warmup) == (30, 12, 2)
    assert capped.multiplier(0) == 0.0 and capped.multiplier(2) == pytest.approx(1.0)
