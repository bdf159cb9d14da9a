"""bench/recipes.py's full-schedule fine-tunes at a tiny scale (--subset): the config's own epochs, the whole
(subset's) val split and rendered eval set scored, units cached under their schedule's name, and the notes
saying what each row trained on."""

from __future__ import annotations

import json

import pytest

from model.recipe_finetune import FULL, on_subset, one_epoch, short

pytestmark = pytest.mark.slow


def test_schedules_key_their_units_apart():
    assert (short(12).name, FULL.name, one_epoch().name) == ("p12", "full", "e1")
    assert FULL.epochs is None and FULL.per_group is None and FULL.val_cap is None and FULL.eval_cap is None
    assert on_subset(FULL, 3).per_group == 3 and on_subset(short(12), 3).per_group == 12
    assert on_subset(FULL, None) == FULL


def test_full_schedule_smoke(tmp_path, manifest):
    from bench.recipes import FINETUNED, main
    from model.manifest import read_manifest, subsample
    from model.train import load_config

    home, out = tmp_path / "home", tmp_path / "r.json"
    args = ["--home", str(home), "--subset", "2", "--seeds", "0", "--out", str(out), "--frozen"]
    args += ["--finetune", "a", "--lofo-finetune", "a", "--lofo-families", "face-swap"]
    assert main([*args, "--steps", "finetune,lofo,report"]) == 0

    (folder,) = (home / "cache" / "recipes").glob("*-sub2")
    unit = json.loads((folder / "finetune-a-s0-full.json").read_text())
    epochs = load_config(FINETUNED["a"][1]).epochs
    n_val = sum(s.split == "val" for s in subsample(read_manifest(manifest), 2))
    assert (unit["schedule"], unit["epochs"], unit["threads"]) == ("full", epochs, 2)
    assert unit["n_val_scored"] == n_val and unit["val_cap"] is None and unit["eval_cap"] is None
    assert unit["n_rendered_eval_scored"] == unit["nonphoto_rendered_eval"]["n"] > 0
    shares = unit["val_verdicts"]
    assert abs(shares["ai_generated"] + shares["real"] + shares["uncertain"] - 1) < 1e-9
    fold = json.loads((folder / "lofo-a-face-swap-s0-e1.json").read_text())
    assert fold["schedule"] == "e1" and fold["n_train"] > 0

    rep = json.loads(out.read_text())
    row = rep["recipes"]["a"]
    assert f"{epochs} epoch(s)" in row["schedule"] and "full val" in row["schedule"]
    assert row["stats"]["val_uncertain"]["n"] == 1
    md = out.with_suffix(".md").read_text()
    assert "val left uncertain" in md and "Schedules" in md


@pytest.mark.parametrize(("script", "flag"), [("recipes", "--lofo-families"), ("lofo_schedule", "--families")])
def test_a_misspelt_family_is_refused_before_anything_trains(script, flag, tmp_path, manifest, capsys):
    import importlib

    main = importlib.import_module(f"bench.{script}").main
    home = tmp_path / "home"
    with pytest.raises(SystemExit) as exit_:
        main(["--manifest", str(manifest), "--home", str(home), "--subset", "2", flag, "face-swap", "face-swaps"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and f"{flag} face-swaps: not a family" in err and "face-swap," in err
    assert not home.exists()  # nothing was trained or cached
