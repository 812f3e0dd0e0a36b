"""The timing language: grammar (``timing.lark``) -> parser -> immutable model -> pure evaluation.

``schedule`` is its one Celery face (:class:`Timing`, a ``BaseSchedule``) and ``firing`` gives the
nominal fire instants of any Celery schedule. Nothing here knows about jobs, the store or beat.
"""
