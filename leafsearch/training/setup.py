"""A run's setup: from a space file and the command line's choices to what the search loop
takes (the space, STUDY, the objective and the run options). Every input is checked before the
study is touched, the data drawn (built-in leaves) or scanned and decoded once, the trial
processes' fork server started early.

Named `setup`, not `study`: "study" already names the space file's STUDY (`search.study.Study`),
the engine's study and the results folder.

It prints nothing: what the user should read goes through `note`, and the CLI decides how.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from leafsearch import runtime
from leafsearch.data import IMAGE_EXTENSIONS, ImageFolder, content_id, scan_folder
from leafsearch.training import recipe
from leafsearch.training.objective import LeafObjective
from search import engines
from search.errors import UsageError
from search.execution.executor import TrialProcesses
from search.options import RunOptions, WarmStart
from search.space import Bool, Fixed, Space
from search.spacefile import load_space_file
from search.study import Study

SYNTHETIC_IMAGES = 560
SYNTHETIC_SIZE = 256
PRELOAD = ("leafsearch.training.preload",)  # what the trial processes' fork server imports once
Note = Callable[[str], None]


@dataclasses.dataclass
class Request:
    """What the command line asked for (`leafsearch run` / `worker`)."""

    space_file: str | None
    results: Path
    data: Path | None = None
    study: str | None = None
    backend: str = "optuna"
    algorithm: str | None = None
    pruner: str | None = None
    no_prune: bool = False
    trials: int | None = None
    max_epochs: int | None = None
    seed: int = 0
    timeout_s: float | None = None
    storage: str | None = None
    in_process: bool = False
    precision: str = "auto"
    feature_cache: bool = True  # EfficientNet trials train on their frozen part's cached features
    worker_index: int | None = 0  # search.options.RunOptions.worker_index: None for `leafsearch worker`
    pins: Sequence[tuple[str, str]] = ()
    warm_start: str | None = None  # an earlier study whose best trials this one runs first (when created)
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # image_size, backbone, weights


@dataclasses.dataclass
class Prepared:
    """A study ready to run: its space, spec, objective and options, and what was found."""

    space: Space
    spec: Study
    objective: LeafObjective
    options: RunOptions
    images: int
    class_names: tuple[str, ...]
    device: str
    precision: str
    gpus: int


def load_space(
    path: str,
    pins: Sequence[tuple[str, str]] = (),
    overrides: Mapping[str, Any] | None = None,
    objectives: Sequence[str] = (),
    constraints: Sequence[str] = (),
) -> tuple[Space, Study]:
    """The space file's SPACE (with --set pins and explicit overrides, which may leave the space's
    own values: a smaller image, offline weights) and STUDY (with --objective, which replaces its
    cost objectives, and --constraint, which adds to or tightens its bounds)."""
    space, spec = load_space_file(
        path, known_names=set(recipe.KNOWN_NAMES), pipelines=set(recipe.PIPELINES), metrics=set(recipe.METRICS)
    )
    spec = with_objectives(spec, objectives, constraints)
    for name, value in pins:
        if name in recipe.AUGMENT_KNOBS and name not in space and "augment" in space:
            raise UsageError(
                f"--set {name}={value}: this space sets {name} through `augment` (a level of "
                f"{', '.join(recipe.AUGMENT_PRESETS)}); pin a level instead, e.g. --set augment=none"
            )
        space = space.pin(name, value)
    for name, value in (overrides or {}).items():
        if value is not None:
            space = Space({**dict(space.items()), name: Fixed(value)})
    problems = recipe.space_problems(space, spec.pipeline)
    if problems:
        raise UsageError(f"{path}: invalid space: " + "; ".join(problems))
    return space, spec


def with_objectives(spec: Study, objectives: Sequence[str], constraints: Sequence[str]) -> Study:
    """STUDY with the command line's `--objective NAME[:DIRECTION]` and `--constraint NAME<=BOUND`."""
    from search.study import constraint_problems, objective_problems, parse_constraint, parse_objective

    if not objectives and not constraints:
        return spec
    wanted = dict(parse_objective(text) for text in objectives) if objectives else dict(spec.objectives)
    bounds = dict(spec.constraints)
    for text in constraints:
        try:
            name, bound = parse_constraint(text)
        except ValueError as exc:
            raise UsageError(f"--constraint: {exc}") from None
        bounds[name] = bound
    problems = objective_problems(wanted) + constraint_problems(bounds, spec.metric)
    if problems:
        raise UsageError(
            "; ".join(
                p.replace("STUDY objectives", "--objective").replace("STUDY constraints", "--constraint")
                for p in problems
            )
        )
    return dataclasses.replace(spec, objectives=wanted, constraints=bounds)


def recipe_values(space: Space, name: str, pipeline: str) -> tuple:
    """Every value the space can give `name` in a trial (the recipe's default where not searched)."""
    param = space[name] if name in space else Fixed(recipe.resolve({}, pipeline)[name])
    if isinstance(param, Fixed):
        return (param.value,)
    if hasattr(param, "values"):
        return tuple(param.values)
    raise UsageError(f"parameter `{name}` must be a Choice or Fixed, not a range")


def most_epochs_a_trial(space: Space, pipeline: str, cap: int) -> int:
    """The most epochs one trial can train, across its phases, each capped at `cap` (Hyperband's
    max_epochs, the top rung of Optuna's)."""
    names = ("transfer_epochs", "finetune_epochs") if pipeline == "efficientnet" else ("epochs",)
    total = 0
    for name in names:
        param = space[name] if name in space else None
        most = param.high if param is not None and hasattr(param, "high") else max(recipe_values(space, name, pipeline))
        total += min(int(most), cap)
    return total


def check_backgrounds(folder: Any, flag: str | None, space_file: str | None) -> None:
    """A folder of background photos, from `--backgrounds` (`flag`) or the space file: each trial's
    process reads it, so a bad one would fail every trial; reported once, before anything starts."""
    if folder is None:
        return
    path = Path(str(folder)).expanduser()
    if path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.rglob("*")):
        return
    problem = "no images in it" if path.is_dir() else "no such folder"
    if flag:
        raise UsageError(f"{flag} {folder}: {problem}; pass a folder of background photos (without leaves)")
    raise UsageError(
        f"parameter `backgrounds` {folder!r}: {problem}; set it in {space_file or 'the space file'} to a folder of "
        f"background photos (without leaves), or pass --backgrounds DIR"
    )


def check_study_name(name: str | None) -> str:
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"--study {name!r}: a study name is a plain folder name such as cnn")
    return name


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"--results: cannot write to {folder} ({exc.strerror}); pass --results DIR with a writable folder"
        ) from None


def chosen_pruner(backend: str, pruner: str | None, no_prune: bool) -> str:
    """`--pruner NAME`, or `--no-prune` (its older spelling of `none`), checked against the engine."""
    if no_prune:
        if pruner not in (None, "none"):
            raise UsageError(f"--no-prune contradicts --pruner {pruner}; pass one of them")
        pruner = "none"
    engines.check_options(backend, pruner=pruner)
    return pruner or engines.default_pruner(backend)


def weights_record(weights: str, backbones: list[str]) -> dict[str, Any]:
    """What a trial's run.json records of where its backbone's weights came from: for ImageNet,
    per backbone, the file, its hash and the input normalisation it expects."""
    if weights == "imagenet":
        from leafsearch.models import efficientnet

        return {"weights": weights, "backbones": {name: efficientnet.imagenet_origin(name) for name in backbones}}
    if weights == "none":
        return {"weights": weights}
    path = Path(weights).expanduser().resolve()
    return {
        "weights": "file",
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None,
    }


def builtin_data(results: Path, note: Note) -> Path:
    """The built-in synthetic dataset, drawn once into the results folder and reused afterwards."""
    from leafsearch.data import synthetic

    folder = results / ".synthetic" / f"leaves-{SYNTHETIC_IMAGES}-{SYNTHETIC_SIZE}px-seed0"
    done = folder / ".complete"
    if not done.exists():
        note(f"Drawing the built-in synthetic leaf dataset into {folder} ...")
        synthetic.generate(folder, total=SYNTHETIC_IMAGES, image_size=SYNTHETIC_SIZE, seed=0, workers=2)
        done.write_text("ok\n")
    return folder


@dataclasses.dataclass(frozen=True)
class Checked:
    """The choices `check_inputs` found valid, before anything was written."""

    name: str
    trials: int
    algorithm: str
    pruner: str
    warm: WarmStart | None
    weights_origin: dict[str, Any] | None  # per `weights` value, where an EfficientNet's come from
    mask_head_origin: dict[str, Any] | None  # per `weights` value, where a "lite0" leaf mask head's come from


def prepare(request: Request, space: Space, spec: Study, note: Note) -> Prepared:
    """Check every input (one UsageError, before the study is touched), then get the data, the
    device and the objective ready."""
    checked = check_inputs(request, space, spec)
    data_root = data_folder(request, note)
    folder = scan_folder(data_root)  # a bad folder is reported before the study is touched
    if request.storage is not None:  # an unreachable server is reported now, not after decoding
        from search.engines.optuna.storage import make_storage

        make_storage(request.results / checked.name, request.storage)
    found = _device(request, request.backend)
    max_epochs = request.max_epochs or spec.max_epochs
    objective = leaf_objective(request, spec, data_root, max_epochs)
    for size in recipe_values(space, "image_size", spec.pipeline):  # decode once, and find bad data now
        objective.data(size)
    device = found.result() if isinstance(found, Future) else found
    options = run_options(request, space, spec, checked, max_epochs, data_root, folder, device)
    return Prepared(
        space,
        spec,
        objective,
        options,
        len(folder.paths),
        tuple(folder.class_names),
        device["device"],
        device["policy"],
        device["gpus"],
    )


def check_inputs(request: Request, space: Space, spec: Study) -> Checked:
    """The engine's options, the study's name, the warm start, the backbones' weights, the
    backgrounds and the results folder, in that order; the first bad one is a UsageError and
    nothing has been written (but the probe of a writable results folder)."""
    backend = request.backend
    pruner = chosen_pruner(backend, request.pruner, request.no_prune)
    algorithm = request.algorithm or engines.default_algorithm(backend)
    engines.check_options(
        backend, algorithm, pruner, storage=request.storage, objectives=spec.all_objectives
    )  # as the engine will
    name = check_study_name(request.study or Path(request.space_file or "").stem)
    trials = request.trials or spec.trials
    warm = None
    if request.warm_start is not None:  # read before anything is written
        from search.warmstart import plan

        warm = plan(request.results, request.warm_start, name, space, trials, request.storage)
    weights_origin = check_weights(space, spec.pipeline)
    flag = "--backgrounds" if (request.overrides or {}).get("backgrounds") is not None else None
    for backgrounds in recipe_values(space, "backgrounds", spec.pipeline):  # read in each trial's process: checked here
        check_backgrounds(backgrounds, flag, request.space_file)
    check_writable(request.results)
    return Checked(name, trials, algorithm, pruner, warm, weights_origin, mask_head_origin(space, spec.pipeline))


def check_weights(space: Space, pipeline: str) -> dict[str, Any] | None:
    """An EfficientNet study's weights, every backbone with every `weights` value the space can
    give, checked before anything is written (unusable weights are a UsageError), and what each
    trial's run.json records of their origin; None for another pipeline. A space that can give
    `leaf_mask="lite0"` (any pipeline) needs EfficientNet-Lite0's ImageNet weights, unless every
    trial builds without pretrained weights (`weights="none"`)."""
    if "lite0" in leaf_masks_offered(space, pipeline) and any(
        weights != "none" for weights in recipe_values(space, "weights", pipeline)
    ):
        runtime.import_keras_quietly()
        from leafsearch.models import lite_mask_head

        lite_mask_head.check_weights_available()
    if pipeline != "efficientnet":
        return None
    runtime.import_keras_quietly()
    from leafsearch.models import efficientnet

    for backbone in recipe_values(space, "backbone", pipeline):
        for weights in recipe_values(space, "weights", pipeline):
            efficientnet.check_weights_available(backbone, weights)
    backbones = [str(b) for b in recipe_values(space, "backbone", pipeline)]
    return {str(weights): weights_record(weights, backbones) for weights in recipe_values(space, "weights", pipeline)}


def mask_head_origin(space: Space, pipeline: str) -> dict[str, Any] | None:
    """What run.json records of where a "lite0" leaf mask head's encoder starts from, per `weights`
    value (its ImageNet weights unless the trial builds without pretrained weights); None when the
    space never gives that head. Call after `check_weights`, which checked the package."""
    if "lite0" not in leaf_masks_offered(space, pipeline):
        return None
    runtime.import_keras_quietly()
    from leafsearch.models import lite_mask_head, lite_weights

    return {
        str(weights): lite_weights.origin(lite_mask_head.VARIANT) if weights != "none" else {"weights": "none"}
        for weights in recipe_values(space, "weights", pipeline)
    }


def leaf_masks_offered(space: Space, pipeline: str) -> tuple:
    """Every leaf mask head a trial of the space can build (True and False of older spaces read as
    scratch and none; a `Bool` gives no other)."""
    if isinstance(space["leaf_mask"] if "leaf_mask" in space else None, Bool):
        return ("none", "scratch")
    return tuple(recipe.OLD_LEAF_MASKS.get(value, value) for value in recipe_values(space, "leaf_mask", pipeline))


def data_folder(request: Request, note: Note) -> Path:
    """`--data`, or the built-in synthetic leaves (drawn on the first run)."""
    if request.data is not None:
        return request.data
    data_root = builtin_data(request.results, note)
    note(
        f"No --data given: using the built-in synthetic leaf dataset ({data_root}); pass --data DIR for your own images."
    )
    return data_root


def leaf_objective(request: Request, spec: Study, data_root: Path, max_epochs: int) -> LeafObjective:
    return LeafObjective(
        data_root=data_root,
        pipeline=spec.pipeline,
        max_epochs=max_epochs,
        cache_dir=request.results / ".cache",
        metric=spec.metric,
        direction=spec.direction,
        split_seed=request.seed,
        precision=request.precision,
        feature_cache=request.feature_cache,
    )


def run_options(
    request: Request,
    space: Space,
    spec: Study,
    checked: Checked,
    max_epochs: int,
    data_root: Path,
    folder: ImageFolder,
    device: Mapping[str, Any],
) -> RunOptions:
    """What the search loop is told: the study's name, folder, budget and engine, the identity a
    resumed study must match, and what every trial's run.json records."""
    return RunOptions(
        study_name=checked.name,
        study_dir=request.results / checked.name,
        trials=checked.trials,
        backend=request.backend,
        storage=request.storage,
        algorithm=checked.algorithm,
        pruner=checked.pruner,
        max_resource=most_epochs_a_trial(space, spec.pipeline, max_epochs),
        seed=request.seed,
        timeout_s=request.timeout_s,
        identity={"data": content_id(folder), "split_seed": request.seed},
        settings={
            "trials": checked.trials,
            "max_epochs": max_epochs,
            "algorithm": checked.algorithm,
            "pruner": checked.pruner,
        },
        run_info={
            **device["versions"],
            "precision": device["policy"],
            "data": str(data_root),
            "classes": len(folder.class_names),
            **({"weights_origin": checked.weights_origin} if checked.weights_origin else {}),
            **({"leaf_mask_origin": checked.mask_head_origin} if checked.mask_head_origin else {}),
        },
        worker_index=request.worker_index,
        in_process=request.in_process,
        preload=PRELOAD,
        warm_start=checked.warm,
    )


def _device(request: Request, backend: str) -> Future | dict:
    """The device, precision and library versions. Trials train in children of a fork server
    that imports Keras once: started now, its imports overlap this process's work, and where
    this process needs no Keras of its own (the KerasTuner engine does), a child of it reports the
    device instead of this process importing Keras a second time (~5 s of CPU per run)."""
    found: Future | dict | None = None
    if not request.in_process:
        TrialProcesses.start_server(PRELOAD)
        found = TrialProcesses.call(runtime.report, request.precision)
    if found is None or backend == "kerastuner":
        runtime.import_keras_quietly()
    return found if found is not None else runtime.report(request.precision)


def joined(request: Request) -> tuple[Space, Study, Request]:
    """`leafsearch worker`: an existing Optuna study's space (unless a space file is given) and
    settings, from its storage, as the request to run."""
    from search.engines.optuna.storage import stored_study

    name = check_study_name(request.study)
    study = stored_study(request.results / name, name, request.storage)
    attrs = study.user_attrs
    settings = attrs.get("settings", {})
    if request.space_file is not None:
        space, spec = load_space(request.space_file, request.pins, request.overrides)
    else:
        space = Space.from_dict(attrs["space"])
        spec = Study(
            pipeline=attrs["pipeline"],
            metric=attrs["metric"],
            direction=study.directions[0].name.lower(),
            trials=settings.get("trials", 1),
            max_epochs=settings.get("max_epochs", 1),
            objectives=attrs.get("objectives") or {},
            constraints=attrs.get("constraints") or {},
        )
    return (
        space,
        spec,
        dataclasses.replace(
            request,
            backend="optuna",
            algorithm=settings.get("algorithm"),
            seed=attrs.get("split_seed", 0),
            pruner=settings.get("pruner") or ("median" if settings.get("prune", True) else "none"),
            no_prune=False,
            max_epochs=request.max_epochs or settings.get("max_epochs"),
            trials=request.trials or settings.get("trials"),
            timeout_s=None,
            worker_index=None,
        ),
    )
