"""Single DICOM values from user input, checked against the VR they are written as.

Identity from sidecars, CSV manifests and run confs lands in DICOM attributes (PatientID
is LO, PatientName PN, AccessionNumber SH …). pydicom's own validation checks lengths
and character repertoires; on top of it a value must be *one* value (a backslash would
split it into two: ``REL\\BS`` becomes a two-valued PatientID) and carry no control
characters (LO, SH and PN allow none but ESC, and radpath writes no escape sequences).
"""

from __future__ import annotations

from enum import Enum

from pydicom import config
from pydicom.valuerep import validate_value


class VR(str, Enum):
    """The value representations radpath writes user input as (PS3.5 table 6.2-1)."""

    LO = "LO"  # Long String: 64 characters
    SH = "SH"  # Short String: 16 characters
    PN = "PN"  # Person Name: 64 characters per component group, up to 5 ^-separated components
    DA = "DA"  # Date: YYYYMMDD
    CS = "CS"  # Code String: 16 characters of A-Z, 0-9, space, _
    UI = "UI"  # Unique Identifier: 64 characters of digits and dots
    UT = "UT"  # Unlimited Text


def check_value(vr: VR, text: str) -> str:
    """``text`` when it is one valid value of ``vr``; ValueError saying why otherwise."""
    if "\\" in text and vr is not VR.UT:
        raise ValueError(f"must be a single value: a backslash would make it several ({vr.value})")
    if any((ord(c) < 0x20 and c not in "\r\n\t" if vr is VR.UT else ord(c) < 0x20) or ord(c) == 0x7F
           for c in text):
        raise ValueError(f"must not contain control characters ({vr.value})")
    if vr is VR.PN:
        for group in text.split("="):
            if group.count("^") > 4:
                raise ValueError("a person name has at most 5 ^-separated components (PN)")
        if text.count("=") > 2:
            raise ValueError("a person name has at most 3 =-separated groups (PN)")
    try:
        validate_value(vr.value, text, config.RAISE)
    except ValueError as err:
        message = str(err)
        # pydicom's message may quote the value; a PatientID or birth date stays out of logs
        if message.startswith("Invalid value"):
            raise ValueError(f"is not a valid {vr.value} value") from None
        raise ValueError(message.split(" Please see")[0].rstrip(".").replace("The value", "the value")) from None
    return text
