"""GetInputOperator's signature (Kaapana 0.6)."""

from kaapana.operators.KaapanaBaseOperator import KaapanaBaseOperator


class GetInputOperator(KaapanaBaseOperator):
    def __init__(self, dag, name="get-input", data_type="dicom", check_modality=False, parallel_downloads=3,
                 **kwargs):
        self.data_type, self.check_modality, self.parallel_downloads = data_type, check_modality, parallel_downloads
        super().__init__(dag=dag, name=name, **kwargs)
