"""Operations on jobs, one implementation behind every face: the Python API, remote control,
the beat's remote-control node, the status rendering and the ``celery orchestra`` CLI."""
