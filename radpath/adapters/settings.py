"""One typed settings object, built once from the environment.

Kaapana hands a processing container everything as environment variables: the run
layout (``WORKFLOW_DIR``, ``BATCH_NAME``, ``OPERATOR_IN_DIR`` …), service endpoints and
credentials, and every ``workflow_form`` key upper-cased into a string variable. The
whole run conf is also mounted at ``$WORKFLOW_DIR/conf/conf.json``.

Every variable radpath reads is declared once below as an :class:`Option` (name, type,
default, help). Parsing happens once, at start-up; a bad value raises
:class:`SettingsError` naming the variable, so a stage never fails half-way through a
batch because of a typo in a form.

One precedence rule, Kaapana's, in every runtime (:func:`stage_environment`): the run
conf's ``workflow_form`` over the environment (the platform's variables under the
operator's defaults), the run layout over both, then each option's default. Kaapana's
KaapanaBaseOperator builds a pod's environment that way; radpath applies the same rule
to ``conf.json`` wherever it runs, so a local Airflow task, ``radpath run --no-airflow``
and a Kaapana pod read the same options from the same run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from radpath.domain.link.site import KAAPANA_DICOMWEB_PATH
from radpath.domain.names import check_component
from radpath.domain.vocabulary import Laterality, SegEncoder, Speed, StoreTarget, Term, Transcoding

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


class SettingsError(ValueError):
    """A setting is missing or has a value that cannot be used.

    ``variable`` is the environment variable at fault, so callers (and tests) can name it.
    """

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, yes/no, 1/0)")


def parse_positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not value > 0:
        raise ValueError("expected a number greater than 0")
    return value


def parse_non_negative_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("expected a whole number of 0 or more")
    return value


def parse_positive_int(text: str) -> int:
    value = parse_non_negative_int(text)
    if value == 0:
        raise ValueError("expected a whole number of 1 or more")
    return value


def parse_url(text: str) -> str:
    value = text.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value


def parse_text(text: str) -> str:
    return text.strip()


def parse_optional_text(text: str) -> str | None:
    return text.strip() or None


def choice(*allowed: str) -> Callable[[str], str]:
    """Parser for a value out of a fixed set (case-insensitive, stored lower-case)."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    parse.choices = allowed  # type: ignore[attr-defined]  # read by docs/Task API export
    return parse


E = TypeVar("E", bound=Term)


def term(kind: type[E]) -> Callable[[str], E]:
    """Parser for one of a vocabulary's terms (case-insensitive)."""
    pick = choice(*kind.values())

    def parse(text: str) -> E:
        return kind(pick(text))

    parse.choices = kind.values()  # type: ignore[attr-defined]
    return parse


@dataclass(frozen=True)
class Option(Generic[T]):
    """One environment variable radpath reads.

    ``form_key`` marks the options meant for a user's choice in the workflow form (the
    forms radpath's DAGs offer may hold no other field: ``radpath.pipeline.stagetable
    --check``). Any option may arrive from a form, as on Kaapana (:func:`stage_environment`).
    """

    env: str
    parse: Callable[[str], T]
    default: T | None = None
    help: str = ""
    required: bool = False
    form_key: bool = False
    secret: bool = False
    #: Variables read when ``env`` is absent, in order: where a platform names the same
    #: thing otherwise (Kaapana gives pods DICOM_WEB_FILTER_URL, not DICOMWEB_URL).
    fallbacks: tuple[str, ...] = ()

    def read(self, environ: Mapping[str, str]) -> T | None:
        raw: Any = environ.get(self.env)
        for fallback in self.fallbacks:
            if raw is None:
                raw = environ.get(fallback)
        if raw is None:
            if self.required:
                raise SettingsError(self.env, f"is required but not set ({self.help})")
            return self.default
        if isinstance(raw, bool | int | float):  # conf.json may carry JSON scalars
            raw = str(raw)
        if not isinstance(raw, str):
            raise SettingsError(self.env, f"expected a single value, got {type(raw).__name__}")
        try:
            return self.parse(raw)
        except ValueError as err:
            shown = "***" if self.secret else repr(raw)
            raise SettingsError(self.env, f"{err}, got {shown}") from None


def _option(opt: Option, **kwargs: Any) -> Any:
    # Secrets stay out of repr(): a settings object printed in a log shows no password.
    return field(metadata={"option": opt}, repr=not opt.secret, **kwargs)


def _options_of(cls: type) -> list[tuple[str, Option]]:
    return [(f.name, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


def _build(cls: type[T], environ: Mapping[str, str]) -> T:
    values = {name: opt.read(environ) for name, opt in _options_of(cls)}
    return cls(**values)


@dataclass(frozen=True)
class RunLayout:
    """Where a stage reads and writes: Kaapana's batch layout.

    ``$WORKFLOW_DIR/$BATCH_NAME/<element>/$OPERATOR_IN_DIR`` is a stage's input and
    ``…/$OPERATOR_OUT_DIR`` its output; ``$WORKFLOW_DIR/conf/conf.json`` the run conf.
    """

    workflow_dir: Path | None = _option(
        Option("WORKFLOW_DIR", Path, help="the run folder, e.g. /kaapana/mounted/data/<run_id>")
    )
    batch_name: str = _option(Option("BATCH_NAME", parse_text, "batch", "folder of batch elements"))
    operator_in_dir: str | None = _option(
        Option("OPERATOR_IN_DIR", parse_optional_text, help="per-element input folder name")
    )
    operator_out_dir: str | None = _option(
        Option("OPERATOR_OUT_DIR", parse_optional_text, help="per-element output folder name")
    )
    run_id: str | None = _option(Option("RUN_ID", parse_optional_text, help="Airflow run id"))
    dag_id: str | None = _option(Option("DAG_ID", parse_optional_text, help="Airflow DAG id"))
    task_id: str | None = _option(Option("TASK_ID", parse_optional_text, help="Airflow task id"))

    def __post_init__(self) -> None:
        # Each is one folder name, never a path: checked at construction, so no layout
        # (from the environment, a form, or dataclasses.replace) can lead outside the run.
        for variable, value in (("BATCH_NAME", self.batch_name), ("OPERATOR_IN_DIR", self.operator_in_dir),
                                ("OPERATOR_OUT_DIR", self.operator_out_dir)):
            if value is not None:
                try:
                    check_component(value)
                except ValueError as err:
                    raise SettingsError(variable, f"{err}, got {value!r}") from None

    @property
    def batch_dir(self) -> Path:
        return self.require_workflow_dir() / self.batch_name

    @property
    def conf_path(self) -> Path:
        return self.require_workflow_dir() / "conf" / "conf.json"

    def element_folders(self) -> list[Path]:
        """The batch's element folders in name order (hidden ones and links to folders
        elsewhere are no elements: a link would lead a stage's writes outside the run)."""
        if self.workflow_dir is None or not self.batch_dir.is_dir():
            return []
        return sorted(p for p in self.batch_dir.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and not p.is_symlink())

    def require_workflow_dir(self) -> Path:
        if self.workflow_dir is None:
            raise SettingsError("WORKFLOW_DIR", "is required to run a stage but not set")
        return self.workflow_dir


@dataclass(frozen=True)
class DicomWebSettings:
    """The DICOMweb endpoint and how to authenticate against it.

    Credentials, most specific first: ``DICOMWEB_TOKEN`` (bearer), ``DICOMWEB_USERNAME``
    + ``DICOMWEB_PASSWORD`` (basic), then Kaapana's project user
    (``KAAPANA_PROJECT_USER_NAME`` / ``_PASSWORD``), exchanged for a bearer token at
    ``KEYCLOAK_URL`` as Kaapana's own services do.
    """

    url: str | None = _option(
        Option(
            "DICOMWEB_URL",
            parse_url,
            help="DICOMweb base URL (QIDO/WADO/STOW root), e.g. http://localhost:8042/dicom-web; in a Kaapana "
            "pod DICOM_WEB_FILTER_URL, the one PACS endpoint a project's pods may reach",
            fallbacks=("DICOM_WEB_FILTER_URL",),
        )
    )
    token: str | None = _option(
        Option("DICOMWEB_TOKEN", parse_optional_text, help="bearer token", secret=True)
    )
    username: str | None = _option(
        Option("DICOMWEB_USERNAME", parse_optional_text, help="basic-auth user")
    )
    password: str | None = _option(
        Option("DICOMWEB_PASSWORD", parse_optional_text, help="basic-auth password", secret=True)
    )
    project_user: str | None = _option(
        Option("KAAPANA_PROJECT_USER_NAME", parse_optional_text, help="Kaapana project user")
    )
    project_password: str | None = _option(
        Option(
            "KAAPANA_PROJECT_USER_PASSWORD",
            parse_optional_text,
            help="Kaapana project user's password",
            secret=True,
        )
    )
    keycloak_url: str | None = _option(
        Option("KEYCLOAK_URL", parse_url, help="Keycloak base URL (Kaapana)")
    )
    keycloak_client_id: str = _option(
        Option("KEYCLOAK_CLIENT_ID", parse_text, "kaapana", "Keycloak client and realm")
    )
    keycloak_client_secret: str | None = _option(
        Option("KAAPANA_CLIENT_SECRET", parse_optional_text, help="Keycloak client secret", secret=True)
    )
    verify_tls: bool = _option(
        Option("DICOMWEB_VERIFY_TLS", parse_bool, True, "check the server's TLS certificate")
    )
    timeout_s: float = _option(
        Option("DICOMWEB_TIMEOUT", parse_positive_float, 60.0, "seconds per request")
    )
    retries: int = _option(
        Option(
            "DICOMWEB_RETRIES",
            parse_non_negative_int,
            3,
            "retries on connection errors and HTTP 5xx (never on 4xx)",
        )
    )
    backoff_s: float = _option(
        Option("DICOMWEB_BACKOFF", parse_positive_float, 0.5, "first retry delay, doubled per retry")
    )

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            missing = "DICOMWEB_PASSWORD" if self.password is None else "DICOMWEB_USERNAME"
            raise SettingsError(missing, "basic auth needs both DICOMWEB_USERNAME and DICOMWEB_PASSWORD")
        if self.project_user and not self.project_password:
            raise SettingsError(
                "KAAPANA_PROJECT_USER_PASSWORD", "is required when KAAPANA_PROJECT_USER_NAME is set"
            )

    @property
    def auth_mode(self) -> str:
        """``bearer``, ``basic``, ``keycloak`` or ``none``."""
        if self.token:
            return "bearer"
        if self.username:
            return "basic"
        if self.project_user and self.keycloak_url:
            return "keycloak"
        return "none"


@dataclass(frozen=True)
class StageOptions:
    """What a user chooses per run (Kaapana's workflow form; upper-cased env vars)."""

    organ: str | None = _option(
        Option(
            "ORGAN",
            parse_optional_text,
            help="organ override (a key of anatomy/master.json); empty: read it from the slide",
            form_key=True,
        )
    )
    laterality: str | None = _option(
        Option(
            "LATERALITY",
            choice("", *Laterality.values()),
            help="laterality override; empty: read it from the slide",
            form_key=True,
        )
    )
    merge_bilateral: bool = _option(
        Option(
            "MERGE_BILATERAL",
            parse_bool,
            True,
            "union of left and right masks when the slide names no side",
            form_key=True,
        )
    )
    totalseg_speed: Speed = _option(
        Option(
            "TOTALSEG_SPEED",
            term(Speed),
            Speed.FAST,
            "TotalSegmentator resolution: fast (3 mm), fastest (6 mm) or full",
            form_key=True,
        )
    )
    totalseg_full_on_cpu: bool = _option(
        Option(
            "TOTALSEG_FULL_ON_CPU",
            parse_bool,
            False,
            "run the requested resolution on CPU too (otherwise CPU runs use fast mode, and say so)",
            form_key=True,
        )
    )
    seg_encoder: SegEncoder = _option(
        Option(
            "SEG_ENCODER",
            term(SegEncoder),
            SegEncoder.DCMQI,
            "DICOM SEG writer: dcmqi's itkimage2segimage, or highdicom (used anyway where dcmqi cannot)",
            form_key=True,
        )
    )
    totalseg_robust_crop: bool = _option(
        Option("TOTALSEG_ROBUST_CROP", parse_bool, False, "TotalSegmentator's robust crop (small organs)", form_key=True)
    )
    totalseg_threads: int = _option(
        Option(
            "TOTALSEG_THREADS",
            parse_positive_int,
            2,
            "threads for TotalSegmentator's resampling and saving (on CPU its torch uses every core)",
        )
    )
    totalseg_standin_weights: bool = _option(
        Option(
            "TOTALSEG_STANDIN_WEIGHTS",
            parse_bool,
            False,
            "when TotalSegmentator's official weights are absent, use radpath's small stand-in models (tests, demo)",
        )
    )
    allow_unlinked: bool = _option(
        Option(
            "ALLOW_UNLINKED",
            parse_bool,
            False,
            "import slides with no patient link into a study of their own",
            form_key=True,
        )
    )
    slide_workers: int = _option(
        Option("SLIDE_WORKERS", parse_positive_int, 4, "threads per slide conversion", form_key=True)
    )
    slide_tile_size: int = _option(
        Option(
            "SLIDE_TILE_SIZE",
            parse_positive_int,
            512,
            "tile size when slides are re-tiled (sources with native tiles keep theirs)",
            form_key=True,
        )
    )
    include_label: bool = _option(
        Option(
            "INCLUDE_LABEL",
            parse_bool,
            False,
            "convert the slide label image too (off by default: labels carry names)",
            form_key=True,
        )
    )
    include_overview: bool = _option(
        Option("INCLUDE_OVERVIEW", parse_bool, True, "convert the overview (macro) image", form_key=True)
    )
    slide_transcoding: Transcoding = _option(
        Option(
            "SLIDE_TRANSCODING",
            term(Transcoding),
            Transcoding.JPEG,
            "encoding for slide tiles that cannot be copied as they are",
            form_key=True,
        )
    )
    store_target: StoreTarget = _option(
        Option(
            "STORE_TARGET",
            term(StoreTarget),
            StoreTarget.DICOMWEB,
            "where results go: STOW-RS, DIMSE C-STORE (Kaapana CTP) or a local folder",
            form_key=True,
        )
    )

    batch_limit: int = _option(
        Option(
            "BATCH_LIMIT",
            parse_positive_int,
            20,
            "radpath-batch: at most this many unlinked slides per scheduled run (the rest wait for the next)",
            form_key=True,
        )
    )
    slides_folder: Path | None = _option(
        Option(
            "SLIDES_FOLDER",
            Path,
            help="radpath-wsi-import: the folder of uploaded slide files with their sidecars or radpath-slides.csv",
            form_key=True,
        )
    )
    store_folder: Path | None = _option(
        Option(
            "STORE_FOLDER",
            Path,
            help="the file store STORE_TARGET=folder writes to (<study>/<series>/<instance>.dcm)",
        )
    )
    viewer_base_url: str = _option(
        Option(
            "VIEWER_BASE_URL",
            parse_url,
            "http://localhost",
            "where OHIF (/ohif/viewer) and SLIM (/slim) are served: the Kaapana host, or radpath view's address",
            form_key=True,
        )
    )
    viewer_dicomweb_path: str = _option(
        Option(
            "VIEWER_DICOMWEB_PATH",
            parse_text,
            KAAPANA_DICOMWEB_PATH,
            "where a browser on the viewers' host reads DICOMweb (the patient view's root, on its own origin): "
            "Kaapana's OHIF and SLIM read dicom-web-filter there",
        )
    )

    def __post_init__(self) -> None:
        if self.laterality == "":
            object.__setattr__(self, "laterality", None)


@dataclass(frozen=True)
class DimseSettings:
    """DIMSE C-STORE peer for STORE_TARGET=dimse: Kaapana's CTP (called AE ``kp-<project>``,
    calling AE = the dataset's name; both default from the run conf's forms)."""

    host: str | None = _option(
        Option("DIMSE_HOST", parse_optional_text, help="C-STORE peer, e.g. ctp-dicom-service.<namespace>.svc")
    )
    port: int = _option(Option("DIMSE_PORT", parse_positive_int, 11112, "C-STORE peer's port"))
    called_ae: str | None = _option(
        Option("DIMSE_CALLED_AE", parse_optional_text, help="called AE title (Kaapana: kp-<project name>)")
    )
    calling_ae: str | None = _option(
        Option("DIMSE_CALLING_AE", parse_optional_text, help="calling AE title (Kaapana: the dataset's name)")
    )
    settle_s: int = _option(
        Option("DIMSE_SETTLE_TIMEOUT", parse_positive_int, 600,
               "seconds to wait until what the peer received shows in the PACS (Kaapana's CTP files it "
               "through its incoming pipeline, after the C-STORE has ended)")
    )


@dataclass(frozen=True)
class Settings:
    """Everything radpath reads from its environment, parsed once."""

    layout: RunLayout
    dicomweb: DicomWebSettings
    options: StageOptions
    dimse: DimseSettings
    conf: Mapping[str, Any] = field(default_factory=dict)
    #: The environment is a Kaapana platform's (:func:`on_kaapana`).
    on_kaapana: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of a stage: the run layout from ``environ`` (default: this
        process's), everything else by :func:`stage_environment` over the run conf.

        On Kaapana a STORE_TARGET of ``dicomweb`` (from the workflow form or the
        environment) is refused here, before any stage works (:data:`STOW_ON_KAAPANA`)."""
        env = os.environ if environ is None else environ
        kaapana = on_kaapana(env)
        layout = _build(RunLayout, env)
        conf = _read_conf(layout)
        env = stage_environment(env, conf, str(layout.conf_path) if layout.workflow_dir else "the run conf")
        options = _build(StageOptions, env)
        if kaapana and env.get("STORE_TARGET") is not None and options.store_target is StoreTarget.DICOMWEB:
            raise SettingsError("STORE_TARGET", STOW_ON_KAAPANA)
        return cls(
            layout=layout,
            dicomweb=_build(DicomWebSettings, env),
            options=options,
            dimse=_build(DimseSettings, env),
            conf=conf,
            on_kaapana=kaapana,
        )


#: Variables Kaapana's KaapanaBaseOperator gives every pod (SERVICES_NAMESPACE,
#: DICOM_WEB_FILTER_URL) and its scheduler has (KAAPANA_BUILD_VERSION too): where one is
#: set, radpath runs on a Kaapana platform (operators/radpath_operators/RadpathBaseOperator.py
#: decides the same way).
KAAPANA_MARKERS = ("KAAPANA_BUILD_VERSION", "SERVICES_NAMESPACE", "DICOM_WEB_FILTER_URL")

#: Why STORE_TARGET=dicomweb is refused on Kaapana.
STOW_ON_KAAPANA = (
    "dicomweb is refused on Kaapana: the one DICOMweb endpoint a project's pods reach is its "
    "dicom-web-filter, which files every STOW-RS into the admin project (STOW_RS/routes.py, "
    "get_default_project_id), not the run's project, and needs a clinical_trial_protocol_info "
    "parameter; Kaapana stores results through CTP, which files them into the project the called "
    "AE names: choose dimse (the default of radpath's store and link operators on Kaapana)"
)


def on_kaapana(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` (the process's, not a workflow form's) is a Kaapana platform's."""
    return any(environ.get(name) for name in KAAPANA_MARKERS)


#: Variables the runtime sets for each task after the form (KaapanaBaseOperator.execute):
#: never taken from a workflow form.
LAYOUT_VARIABLES = frozenset(opt.env for _, opt in _options_of(RunLayout))


def stage_environment(environ: Mapping[str, str], conf: Mapping[str, Any], where: str = "the run conf") -> dict[str, str]:
    """``environ`` with the run conf's workflow form over it: each key upper-cased and its
    value as text, as Kaapana's KaapanaBaseOperator passes the form to a pod (a JSON null
    sets nothing); the run layout stays ``environ``'s."""
    form = conf.get("workflow_form") or {}
    if not isinstance(form, Mapping):
        raise SettingsError("WORKFLOW_DIR", f"{where}: workflow_form is not an object")
    chosen = {str(key).upper(): str(value) for key, value in form.items() if value is not None}
    return {**environ, **{key: value for key, value in chosen.items() if key not in LAYOUT_VARIABLES}}


def _read_conf(layout: RunLayout) -> dict[str, Any]:
    if layout.workflow_dir is None or not layout.conf_path.is_file():
        return {}
    try:
        conf = json.loads(layout.conf_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SettingsError("WORKFLOW_DIR", f"cannot read {layout.conf_path}: {err}") from None
    if not isinstance(conf, dict):
        raise SettingsError("WORKFLOW_DIR", f"{layout.conf_path} does not hold a JSON object")
    return conf


def all_options() -> list[Option]:
    """Every declared option, for documentation and Kaapana's Task API file."""
    return [opt for cls in (RunLayout, DicomWebSettings, DimseSettings, StageOptions) for _, opt in _options_of(cls)]
