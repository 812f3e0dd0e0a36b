"""The Celery beat scheduler and its parts: the fire queue, clock-jump detection, catch-up
planning and batch dispatch (claim -> publish -> settle)."""
