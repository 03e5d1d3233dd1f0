"""The run's selected series into the batch layout: Kaapana's own GetInputOperator on a
platform, ``radpath get-input`` (QIDO/WADO-RS from DICOMWEB_URL) elsewhere."""

from radpath_operators.RadpathBaseOperator import IN_KAAPANA, RadpathBaseOperator

if IN_KAAPANA:
    from kaapana.operators.GetInputOperator import GetInputOperator as RadpathGetInputOperator
else:

    class RadpathGetInputOperator(RadpathBaseOperator):
        """``radpath get-input``: conf ``data_form.identifiers`` → ``batch/<series>/get-input``."""

        def __init__(self, dag, name="get-input", data_type="dicom", **kwargs):
            import sys

            super().__init__(dag=dag, name=name, cmds=[sys.executable, "-m", "radpath", "get-input"],
                             ram_mem_mb=1000, **kwargs)

__all__ = ["RadpathGetInputOperator"]
