"""The MLflow tag names platbench writes and reads, once (platforms.core.tracking re-exports Tag): a module
of its own, importing nothing, so that a run's condition (platforms/core/condition.py) can read them while
tracking records it."""


class Tag:
    PLATFORM = "platbench.platform"
    MODEL = "platbench.model"
    DATASET = "platbench.dataset"
    DATASET_FINGERPRINT = "platbench.dataset_fingerprint"
    GIT_COMMIT = "platbench.git_commit"
    IMAGE_DIGEST = "platbench.image_digest"  # what the run was started from (trainer/image_record.py)
    IMAGE_ID = "platbench.image_id"          # the image's config digest: the same in build, registry, run
    JOB_ID = "platbench.job_id"
    RESULTS_RUN_ID = "platbench.results_run_id"  # results.json's run_id (the trainer's), beside MLflow's own id
    NVIDIA_DRIVER = "platbench.nvidia_driver"    # results.json hardware.nvidia_driver; not a condition field
    STATUS = "platbench.status"            # finished | preempted | failed | killed | lost
    HOST = "platbench.host"                # where the launching process ran …
    PID = "platbench.pid"                  # … and its pid: a RUNNING run whose process is gone is "lost"
    RESULTS_SCHEMA = "platbench.results_schema"
    DEVICE = "platbench.device"
    GPU = "platbench.gpu"
    REGION = "platbench.region"
    INSTANCE_TYPE = "platbench.instance_type"
    LOCAL_MODE = "platbench.local_mode"      # true: the cloud launcher ran the job on this machine
    STAGING = "platbench.staging"            # sharded | naive
    PRICE_SOURCE = "platbench.price_source"  # the price table entries behind cost_usd
    PRICE_BASIS = "platbench.price_basis"    # spot | on-demand (no spot price) | on-demand (core/pricing.py)
    KIND = "platbench.kind"                  # load | batch_inference | sweep | service; absent on a training run
    SWEEP = "platbench.sweep"                # the sweep's name, on its parent run and on every child
    SWEEP_CELL = "platbench.sweep_cell"      # platform/model/pc<N>/seed<S>: the child's place in the matrix
    PARENT_RUN = "mlflow.parentRunId"        # MLflow's own nesting tag (a sweep's children)
    CHECK = "platbench.check"                # passed | failed: the compliance checker (trainer/check.py) on the outputs
    IN_IMAGE = "platbench.in_image"          # true | false: the job ran in the image, as its launcher told the checker
    CHECK_REASON = "platbench.check_reason"  # its first problem, and how many there were
    MLFLOW_MODEL = "platbench.mlflow_model"  # pyfunc: artifact `model` is an MLflow model; else none: why
    SOFTWARE = "platbench.software."         # + python, torch, torchvision, lightning, cuda, cudnn (results.json)
    CONDITION = "platbench.condition"        # short hash of the run's condition (platforms/core/condition.py)
