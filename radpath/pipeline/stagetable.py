"""The one table of stages: name, order, code, operator, image, resources.

The pipeline's order is the order of :data:`STAGES`; :mod:`radpath.pipeline.stages` (the registry
``radpath stage`` runs), :func:`radpath.pipeline.runner.run_pipeline` and the CLI's choices are
derived from it. Kaapana's operators cannot import radpath (they run in Kaapana's
Airflow, radpath only in the containers) and Kaapana's build helper needs a literal image
line in each operator file, so those files keep their literals and
``python -m radpath.pipeline.stagetable --check`` (run by CI) checks them, the DAG chain, the
processing containers and the workflow form's choices against this table and
:mod:`radpath.domain.vocabulary`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from radpath.adapters.settings import RunLayout, all_options
from radpath.domain.vocabulary import Laterality, Speed, StageName, StoreTarget
from radpath.pipeline import headstart


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``radpath stage <name>``, its container ``radpath-<name>`` and operator.

    ``options`` are the settings (:mod:`radpath.adapters.settings`, lower-case) its operator
    takes as arguments, each passed to the container as that variable.
    """

    name: StageName
    function: str  # "module:function" under radpath.pipeline.stages
    summary: str
    operator: str  # class in operators/radpath_operators/<operator>.py
    ram_mem_mb: int
    gpu_mem_mb: int | None = None
    options: tuple[str, ...] = ()
    #: Work its command starts before importing the stage (:mod:`radpath.pipeline.headstart`).
    head_start: Callable[[RunLayout], None] | None = None

    @property
    def module(self) -> str:
        return "radpath.pipeline.stages." + self.function.split(":")[0]

    @property
    def image(self) -> str:
        return f"radpath-{self.name}"

    def load(self):
        """The stage's function (its module imported now, not when the table is read)."""
        module, function = self.function.split(":")
        return getattr(importlib.import_module(f"radpath.pipeline.stages.{module}"), function)


_SPECS = {spec.name: spec for spec in (
    StageSpec(StageName.WSI_DICOMIZE, "wsi_dicomize:run_wsi_dicomize",
              "convert each element's slides to DICOM WSI carrying the patient's identity (wsidicomizer)",
              "WsiDicomizeOperator", 8000, options=("allow_unlinked", "slide_workers", "slide_transcoding")),
    StageSpec(StageName.PAIR, "pair:run_pair",
              "find the other side in the PACS (the slide's CT/MR study, or the study's slides)",
              "PairOperator", 1000),
    StageSpec(StageName.BODYPART, "bodypart:run_bodypart",
              "resolve the organ and side of each element's slide (anatomy/master.json)",
              "BodypartOperator", 500, options=("organ", "laterality")),
    StageSpec(StageName.NIFTI, "nifti:run_nifti",
              "convert the element's chosen CT/MR series to NIfTI (dcm2niix), slices mapped to instances",
              "NiftiOperator", 4000, head_start=headstart.nifti),
    StageSpec(StageName.SEGMENT, "segment:run_segment",
              "segment the slide's organ in the NIfTI series with TotalSegmentator (CT: total, MR: total_mr)",
              "SegmentOperator", 16000, gpu_mem_mb=11000, options=("totalseg_speed",)),
    StageSpec(StageName.MERGE, "merge:run_merge",
              "join the organ's class masks into one mask (union), or keep the side the slide names",
              "MergeOperator", 4000, options=("merge_bilateral",)),
    StageSpec(StageName.SEG_ENCODE, "seg_encode:run_seg_encode",
              "encode the mask as a DICOM SEG on the source series' slices (dcmqi; highdicom as second encoder)",
              "SegEncodeOperator", 8000, options=("seg_encoder",)),
    StageSpec(StageName.QUANTIFY, "quantify:run_quantify",
              "measure each segment on the source series: volume and radiomics features (pyradiomics), as a DICOM SR",
              "QuantifyOperator", 8000),
    StageSpec(StageName.STORE, "store:run_store",
              "put the pair in the PACS, each instance once: source series, slide, SEG, SR (STOW-RS, DIMSE or a folder)",
              "StoreOperator", 2000, options=("store_target",)),
    StageSpec(StageName.LINK, "link:run_link",
              "record the pair as a KOS in the radiology study; link.json, QC picture and split-view page",
              "LinkOperator", 4000, options=("viewer_base_url",)),
)}

#: The stages in pipeline order: the order of :class:`StageName`, written once there.
STAGES: tuple[StageSpec, ...] = tuple(_SPECS[name] for name in StageName)

#: Fields of the workflow form that Kaapana reads itself (json_schema_templates.py).
KAAPANA_FORM_FIELDS = frozenset({"single_execution"})

#: The workflow form's fields (operators/radpath_operators/forms.py) whose choices are a
#: vocabulary's, and the values each may offer (a subset: the form may leave some out).
FORM_CHOICES = {
    "laterality": ("", *Laterality.values()),
    "totalseg_speed": Speed.values(),
    "store_target": StoreTarget.values(),
}


# -- the check ------------------------------------------------------------------------


def _keywords(tree: ast.AST) -> dict[str, ast.expr]:
    """Keyword arguments and parameter defaults anywhere in an operator file."""
    found: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg:
            found.setdefault(node.arg, node.value)
        elif isinstance(node, ast.arguments):
            names = [a.arg for a in node.args[len(node.args) - len(node.defaults):]]
            found.update({n: d for n, d in zip(names, node.defaults) if n not in found})
    return found


#: Parameters every operator has that are not a stage's options.
_COMMON_PARAMETERS = {"self", "dag", "name", "env_vars"}


def _option_parameters(tree: ast.AST, class_name: str) -> list[str]:
    """The named parameters of ``class_name.__init__`` beyond the common ones."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    named = item.args.posonlyargs + item.args.args + item.args.kwonlyargs
                    return [a.arg for a in named if a.arg not in _COMMON_PARAMETERS]
    return []


def _literal(node: ast.expr | None):
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def _image_name(node: ast.expr | None) -> str | None:
    """``radpath-nifti`` of ``f"{DEFAULT_REGISTRY}/radpath-nifti:{KAAPANA_BUILD_VERSION}"``."""
    if not isinstance(node, ast.JoinedStr):
        return None
    text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return text.strip("/:") or None


def check_operator(spec: StageSpec, path: Path) -> list[str]:
    """How ``path`` (the stage's operator file) disagrees with ``spec``."""
    if not path.is_file():
        return [f"{spec.name}: no operator file {path}"]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    kw = _keywords(tree)
    problems = []
    if spec.operator not in classes:
        problems.append(f"{path.name}: no class {spec.operator}")
    if _literal(kw.get("name")) != spec.name:
        problems.append(f"{path.name}: name={_literal(kw.get('name'))!r}, the table says {spec.name.value!r}")
    if _image_name(kw.get("image")) != spec.image:
        problems.append(f"{path.name}: image {_image_name(kw.get('image'))!r}, the table says {spec.image!r}")
    taken = _option_parameters(tree, spec.operator)
    if taken != list(spec.options):
        problems.append(f"{path.name}: takes options {taken}, the table says {list(spec.options)}")
    for resource in ("ram_mem_mb", "gpu_mem_mb"):
        if _literal(kw.get(resource)) != getattr(spec, resource):
            problems.append(f"{path.name}: {resource}={_literal(kw.get(resource))}, "
                            f"the table says {getattr(spec, resource)}")
    return problems


def check_chain(path: Path) -> list[str]:
    """The stage operators of ``chains.pair_segment_link`` must be made in pipeline order."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    chain = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "pair_segment_link"),
                 None)
    if chain is None:
        return [f"{path.name}: no pair_segment_link"]
    operators = {s.operator for s in STAGES}
    made = [n.func.id for n in ast.walk(chain) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id in operators]
    wanted = [s.operator for s in STAGES]
    return [] if made == wanted else [f"{path.name}: the chain makes {made}, the table's order is {wanted}"]


def check_options() -> list[str]:
    """Every stage option is a setting radpath reads."""
    known = {option.env.lower() for option in all_options()}
    return [f"{spec.name}: option {name!r} is no setting of radpath.adapters.settings" for spec in STAGES
            for name in spec.options if name not in known]


def _form_fields(tree: ast.AST) -> dict[str, ast.Dict]:
    """The fields of the ``*_FIELDS`` dicts of ``forms.py``."""
    fields: dict[str, ast.Dict] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_FIELDS")
                                                for t in node.targets) and isinstance(node.value, ast.Dict):
            fields.update({_literal(k): v for k, v in zip(node.value.keys, node.value.values)
                           if k is not None and isinstance(v, ast.Dict)})
    return fields


def check_form(path: Path) -> list[str]:
    """Each workflow-form field is a setting meant for the form (or one of Kaapana's own),
    and each choice field offers only its vocabulary's values."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    form_settings = {option.env.lower() for option in all_options() if option.form_key}
    problems = [f"{path.name}: form field {name!r} is no workflow-form setting of radpath.adapters.settings"
                for name in _form_fields(tree) if name not in form_settings | KAAPANA_FORM_FIELDS]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values):
            field_name = _literal(key) if key is not None else None
            if field_name not in FORM_CHOICES or not isinstance(value, ast.Dict):
                continue
            spec = dict(zip((_literal(k) for k in value.keys if k is not None), value.values))
            offered = _literal(spec.get("enum"))
            allowed = FORM_CHOICES[field_name]
            if not offered or not set(offered) <= set(allowed):
                problems.append(f"{path.name}: {field_name} offers {offered}, the vocabulary has {list(allowed)}")
            default = _literal(spec.get("default"))
            if default is not None and default not in (offered or ()):
                problems.append(f"{path.name}: {field_name}'s default {default!r} is not among {offered}")
    return problems


def check_containers(root: Path) -> list[str]:
    """Every stage has its processing container ``processing-containers/<name>/``."""
    return [f"{s.name}: no processing-containers/{s.name}/Dockerfile" for s in STAGES
            if not (root / "processing-containers" / s.name / "Dockerfile").is_file()]


def check(root: Path) -> list[str]:
    """Everything in the checkout at ``root`` that disagrees with the table."""
    operators = root / "operators" / "radpath_operators"
    problems = [p for spec in STAGES for p in check_operator(spec, operators / f"{spec.operator}.py")]
    problems += check_chain(operators / "chains.py")
    problems += check_form(operators / "forms.py")
    problems += check_containers(root)
    problems += check_options()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m radpath.pipeline.stagetable", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check the operators, chain, form and containers")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    if not args.check:
        for spec in STAGES:
            print(f"{spec.name.value:14} {spec.image:22} {spec.ram_mem_mb:6} MB  {spec.summary}")
        return 0
    problems = check(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"stage table: {len(STAGES)} stages, {len(problems)} disagreement(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
