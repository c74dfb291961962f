"""XAI methods: creating and describing them, and choosing one with ``"auto"``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.xai.maps import _MapStore, _margins, _MethodFailed, _num, _Runner
from bnnr_core.analysis.xai.options import AUTO_ORDER, XaiOptions

if TYPE_CHECKING:
    from bnnr_core.plugins import PluginHost


def _create(host: PluginHost, name: str, layer: str | None) -> tuple[Any, str | None]:
    """Build method ``name``; ``layer`` is passed to methods that accept it."""
    component = host.component("xai_method", name)
    if layer is None:
        return component.create(), None
    try:
        return component.create(layer=layer), None
    except TypeError:
        return component.create(), f"{name} takes no layer option; --xai-layer was not used for it"


def _describe(method: Any, name: str) -> dict[str, Any]:
    describe = getattr(method, "describe", None)
    details: dict[str, Any] = {}
    if callable(describe):
        try:
            details = dict(describe())
        except Exception as exc:  # a report detail must not cost the analysis
            details = {"describe_error": f"{type(exc).__name__}: {exc}"}
    details.setdefault("name", name)
    details.setdefault("batched_backward", bool(getattr(method, "batched_backward", False)))
    return _jsonable(details)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


@attrs.define
class _Choice:
    name: str = ""
    method: Any = None
    choice: dict[str, Any] = attrs.field(factory=dict)
    errors: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    failures: list[str] = attrs.field(factory=list)


def _choose(
    host: PluginHost,
    runner: _Runner,
    keys: np.ndarray,
    available: Sequence[str],
    options: XaiOptions,
    store: _MapStore,
) -> _Choice:
    """``"auto"``: the cheapest candidate whose maps of the calibration ``keys`` beat random maps
    by :data:`~bnnr_core.analysis.saliency.FAITHFUL_MARGIN` on deletion (scored as the runner
    scores), else the candidate with the largest margin. The chosen candidate's calibration maps
    are kept in ``store``."""
    candidates = [n for n in AUTO_ORDER if n in available]
    candidates += [n for n in sorted(available) if n not in AUTO_ORDER]
    result = _Choice()
    records: list[dict[str, Any]] = []
    best: tuple[float, str, Any, _MapStore, list[str], list[str]] | None = None
    for name in candidates:
        record: dict[str, Any] = {"name": name}
        records.append(record)
        trial = _MapStore(keys, store.render, options.faithfulness_steps)
        try:
            method, note = _create(host, name, options.layer)
            errors = runner.run(method, keys, trial, strict_first=True)
        except Exception as exc:
            message = (
                str(exc)
                if isinstance(exc, _MethodFailed)
                else f"{name} could not be created: {type(exc).__name__}: {exc}"
            )
            record.update(status="failed", error=message)
            result.failures.append(message)
            continue
        positions = np.flatnonzero(trial.done)
        auc = sal.curve_auc(trial.curves[positions])
        deletion_margin, insertion_margin = _margins(trial, positions)
        record.update(
            status="evaluated",
            maps=int(positions.size),
            deletion_auc=_num(np.nanmean(auc[:, 0])) if positions.size else None,
            random_deletion_auc=_num(np.nanmean(auc[:, 2])) if positions.size else None,
            deletion_margin=_num(deletion_margin),
            insertion_margin=_num(insertion_margin),
            faithful=bool(deletion_margin >= sal.FAITHFUL_MARGIN),
        )
        score = deletion_margin if math.isfinite(deletion_margin) else -math.inf
        if best is None or score > best[0]:
            best = (score, name, method, trial, errors, [note] if note else [])
        if score >= sal.FAITHFUL_MARGIN:
            break
    for name in candidates[len(records) :]:
        records.append({"name": name, "status": "not evaluated (a cheaper method was faithful)"})
    result.choice = {
        "mode": "auto",
        "rule": (
            "candidates in order of cost; the first whose maps beat random maps on deletion by "
            f"at least {sal.FAITHFUL_MARGIN} (mean over the calibration images) is chosen, "
            "else the one with the largest margin"
        ),
        "calibration_images": len(keys),
        "margin": sal.FAITHFUL_MARGIN,
        "candidates": records,
    }
    if best is None:
        return result
    _, result.name, result.method, trial, result.errors, result.notes = best
    for record in records:
        if record["name"] == result.name:
            record["status"] = "chosen"
    store.merge(trial)
    return result
