"""What the Function and the step both read, in one copy: the step contract (``contract``: names, argv,
tags, step settings, where an output lives, the naming rule), the read options' schema
(``read_options``) and the one type vocabulary (``column_types``).

Standard library only. It lives in the Function's folder because that folder is deployed as it is, with
no build step; the step's snapshot gets this package copied in by ``pipeline.snapshot`` (README, "Layout").
"""
