"""radpath: pathology whole-slide images linked to the patient's radiology, organ by organ."""

__version__ = "0.1.0"
