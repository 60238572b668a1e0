"""``tuner retrain NAME --out model.keras``: the study's best configuration (or any trial's)
as a model file."""

from __future__ import annotations

from pathlib import Path

import click

from tuner.cli.options import storage_option, study_argument


def _keras_path(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if value.suffix != ".keras":
        raise click.BadParameter(f"{value} must end in .keras (Keras' own model format)")
    return value


@click.command()
@study_argument
@storage_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_keras_path,
    help="Where to save the model (.keras); its parameters and metrics go beside it (.json).",
)
@click.option(
    "--trial",
    "trial_number",
    type=click.IntRange(min=0),
    metavar="N",
    help="Retrain trial N instead of the best (any trial with parameters; a study of "
    "several objectives needs one, e.g. from `tuner best NAME --pick ...`).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="Epochs to train [default: as many as the trial trained, else max_epochs].",
)
@click.option(
    "--train-only",
    is_flag=True,
    help="Train on the training split alone, as the trial did (reproduces its score).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder that relative data paths (csv, npz) and module:function code are found "
    "from [default: here].",
)
@click.option(
    "--artifact-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Optuna artifact store [default: <db>-artifacts beside an SQLite file: "
    "tuner-artifacts for tuner.db].",
)
def retrain(
    name: str,
    storage: str | None,
    out: Path,
    epochs: int | None,
    train_only: bool,
    data_dir: Path | None,
    artifact_dir: Path | None,
    trial_number: int | None,
) -> None:
    """Train the best configuration (or --trial N) on train+validation data and save it.

    Writes OUT (.keras) and OUT with .json (parameters, final metrics), and records the
    model as an Optuna artifact of the study, so the dashboard lists it.

    \b
    Example:
      tuner retrain digits-mlp --out digits-mlp.keras
      tuner retrain digits-size --trial 7 --out small.keras
    """
    from tuner.outcome.retrain import default_artifact_dir
    from tuner.outcome.retrain import retrain as retrain_best
    from tuner.storage import load_study, resolve_storage_url

    url = resolve_storage_url(storage)
    study = load_study(name, storage=url)
    which = "the best trial" if trial_number is None else f"trial {trial_number}"
    click.echo(f"Retraining {which} of {name!r} ...", err=True)
    done = retrain_best(
        study,
        out=out,
        artifact_dir=artifact_dir or default_artifact_dir(url),
        epochs=epochs,
        train_only=train_only,
        data_dir=data_dir,
        trial=trial_number,
    )
    metric = done.info["metric"]
    score = done.info["metrics"].get(metric)
    shown = "-" if score is None else f"{score:.6g}"
    click.echo(f"Saved {done.model_path} and {done.info_path} (artifact {done.artifact_id})")
    seen = done.info["trained_on"] != "train"
    trial_value = done.info["trial_values"].get(metric)
    click.echo(
        f"{metric} {shown} on the validation rows"
        + (", which it trained on (so optimistic)" if seen else "")
        + _compared(done.info, trial_value, best=trial_number is None)
    )


def _compared(info: dict, trial_value: float | None, *, best: bool) -> str:
    if trial_value is None:
        return ""
    if best:
        return f"; the study's best was {trial_value:.6g}"
    return f"; trial {info['trial']} scored {trial_value:.6g}"
