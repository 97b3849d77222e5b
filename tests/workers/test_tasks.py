"""Every message the API sends has a Celery task, and the delivery settings that make jobs survive crashes."""

from app.core.config import Settings
from app.core.queue import EVAL_TASK, MERGE_TASK, PREFLIGHT_TASK, TRAIN_TASK
from workers.celery_app import WEEK_S, create_celery


def test_every_task_the_api_enqueues_is_registered():
    import workers.tasks  # noqa: F401 - registers the tasks
    from workers.celery_app import celery_app

    # evaluations, merges and preflights: own tasks
    assert {TRAIN_TASK, EVAL_TASK, MERGE_TASK, PREFLIGHT_TASK} <= set(celery_app.tasks)


def test_late_acks_and_a_redis_visibility_timeout_longer_than_any_job(tmp_path):
    celery = create_celery(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0"))
    conf = celery.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.worker_lost_wait <= 1.0  # a killed pool child's message goes back at once (no result to wait for)
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit == WEEK_S
    embedded = create_celery(Settings(data_dir=tmp_path))
    assert embedded.conf.broker_transport_options == {}  # the SQLAlchemy transport takes no Redis options
