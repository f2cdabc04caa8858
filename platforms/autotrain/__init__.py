"""Hugging Face AutoTrain: listed, not measurable (issue 16 asked to decide from its current state).

The AutoML study of 2023-05-31 used the hosted AutoTrain service: upload labelled images in the browser, the
service trains, and a (test) inference endpoint answers. That hosted project UI is gone: in November 2023 the
maintainer answered "the ui has now been deprecated" and pointed to AutoTrain Advanced
(https://github.com/huggingface/autotrain-advanced/issues/340). What remains, autotrain-advanced
(https://huggingface.co/docs/autotrain/quickstart), is a trainer you run yourself, on this machine or in a
Space you duplicate and pay for by the hardware hour; serving is a separate product (Inference Endpoints). So:

- hosted: there is no service left that takes our images, trains and serves; a Space running the same script
  would measure the Space's hardware and our choice of it, not a managed AutoML service;
- local: `autotrain image-classification` fine-tunes a Hub checkpoint with transformers on our own GPU: that
  measures our hardware and a fine-tuning script, not a service (platbench's own trainer already covers that),
  its image-classification CLI reads datasets from the Hub rather than a local folder
  (https://github.com/huggingface/autotrain-advanced/issues/608), it needs the pretrained weights from the Hub,
  and its last release, 0.8.36, dates from January 2025.

Neither can honestly be driven as the service the study measured, so `autotrain` is listed with that reason
and never launched; the study's published figures for it stay attributed records (platforms/scorecard)."""
from platforms.core.api import Feature, Kind, PlatformSpec

NOT_MEASURABLE = ("the hosted AutoTrain the 2023 study measured was retired (its UI deprecated in Nov 2023, "
                  "huggingface/autotrain-advanced#340); AutoTrain Advanced is a script run on your own hardware "
                  "(locally or in a Space), with serving a separate product: no managed AutoML service is left to "
                  "measure (see platforms/autotrain/__init__.py)")

SPEC = PlatformSpec(
    name="autotrain", title="Hugging Face AutoTrain", kind=Kind.SERVICE, launcher="", not_measurable=NOT_MEASURABLE,
    lacks={
        Feature.ENDPOINTS: "not measurable: no hosted service left to deploy to",
        Feature.REMOTE_STORAGE: "not measurable: no hosted service left to upload to",
        Feature.BILLING: "not measurable: no run to price",
    },
)
