"""The task chains radpath's DAGs share, built in one place so the three DAGs cannot drift
apart: from a batch of slides and/or CT/MR series to linked results, and the verdict."""

from __future__ import annotations

from radpath_operators.BodypartOperator import BodypartOperator
from radpath_operators.LinkOperator import LinkOperator
from radpath_operators.MergeOperator import MergeOperator
from radpath_operators.NiftiOperator import NiftiOperator
from radpath_operators.PairOperator import PairOperator
from radpath_operators.QuantifyOperator import QuantifyOperator
from radpath_operators.RadpathBaseOperator import IN_KAAPANA
from radpath_operators.ReportOperator import ReportOperator
from radpath_operators.SegEncodeOperator import SegEncodeOperator
from radpath_operators.SegmentOperator import SegmentOperator
from radpath_operators.StoreOperator import StoreOperator
from radpath_operators.WsiDicomizeOperator import WsiDicomizeOperator

#: Where each element's split-view page and QC picture go in the project's bucket: Kaapana's
#: static-website results browser shows what lies under staticwebsiteresults (its
#: otsus-method example puts its report there the same way).
RESULTS_PREFIX = "staticwebsiteresults/radpath"
RESULT_FILES = (".html", ".png")
#: The run's research table (radpath report's quantification-<run>.csv/.json) in the bucket.
RESEARCH_PREFIX = "radpath"
RESEARCH_FILES = (".csv", ".json")


def pair_segment_link(dag, input_operator):
    """wsi-dicomize → pair → bodypart → nifti → segment → merge → seg-encode → quantify → store → link
    after ``input_operator`` (on Kaapana with provide-weights before segment, and the link
    pages into the project's bucket after link); returns the last task."""
    wsi_dicomize = WsiDicomizeOperator(dag=dag, input_operator=input_operator)
    pair = PairOperator(dag=dag, input_operator=wsi_dicomize)
    bodypart = BodypartOperator(dag=dag, input_operator=pair)
    nifti = NiftiOperator(dag=dag, input_operator=bodypart)
    segment = SegmentOperator(dag=dag, input_operator=nifti)
    if IN_KAAPANA:  # the weights onto the project's own models volume first
        from radpath_operators.ProvideWeightsOperator import ProvideWeightsOperator

        nifti >> ProvideWeightsOperator(dag=dag) >> segment
    merge = MergeOperator(dag=dag, input_operator=segment)
    seg_encode = SegEncodeOperator(dag=dag, input_operator=merge)
    quantify = QuantifyOperator(dag=dag, input_operator=seg_encode)
    store = StoreOperator(dag=dag, input_operator=quantify)
    link = LinkOperator(dag=dag, input_operator=store)
    input_operator >> wsi_dicomize >> pair >> bodypart >> nifti >> segment >> merge >> seg_encode >> quantify >> store \
        >> link
    if not IN_KAAPANA:
        return link  # standalone the pages stay in the run folder (radpath run prints where)
    from kaapana.operators.MinioOperator import MinioOperator

    results = MinioOperator(dag=dag, name="put-results", action="put", minio_prefix=RESULTS_PREFIX,
                            batch_input_operators=[link], whitelisted_file_extensions=RESULT_FILES)
    link >> results
    return results


def verdict(dag, last, research_table=False, clean_after=(), **pod_kwargs):
    """``report`` after ``last`` whatever happened upstream (it fails the run if any element
    failed), then the clean-up, which also waits for the tasks of ``clean_after`` (those that
    read the run folder beside the report). With ``research_table``, on Kaapana the run's
    research table (volumes and radiomics, written by the report) goes into the project's
    bucket, whatever the verdict. ``pod_kwargs`` go to the report's and the cleaner's pods
    (radpath-wsi-import's namespace)."""
    report = ReportOperator(dag=dag, input_operator=last, **pod_kwargs)
    last >> report
    done = [report, *clean_after]
    if research_table and IN_KAAPANA:
        from airflow.utils.trigger_rule import TriggerRule
        from kaapana.operators.MinioOperator import MinioOperator

        table = MinioOperator(dag=dag, name="put-research-table", action="put", minio_prefix=RESEARCH_PREFIX,
                              none_batch_input_operators=[report], whitelisted_file_extensions=RESEARCH_FILES,
                              trigger_rule=TriggerRule.ALL_DONE)
        report >> table
        done.append(table)
    clean_up(dag, done, **pod_kwargs)
    return report


def clean_up(dag, last, **pod_kwargs):
    """On Kaapana, the run folder is removed after ``last`` (a task or a list), as Kaapana's own DAGs do (a
    run that failed before keeps it, for inspection); standalone it is kept."""
    if IN_KAAPANA:
        from kaapana.operators.LocalWorkflowCleanerOperator import LocalWorkflowCleanerOperator

        last >> LocalWorkflowCleanerOperator(dag=dag, clean_workflow_dir=True, **pod_kwargs)
